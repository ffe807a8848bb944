"""Pure logic of the operational side: histograms, drain batches, log filtering, config files,
password files, channel kinds."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.latency import MAX_EVENT_LABELS, OTHER_EVENT, EventHistograms, LatencyHistogram
from wsfleet.ops.config_file import ConfigFileError, load_config_file
from wsfleet.ops.logs import JsonFormatter, RepeatFilter, setup_logging
from wsfleet.ops.settings import LogFormat, OpsSettings
from wsfleet.server.drain import batches


def test_histogram_buckets_are_cumulative_with_inf() -> None:
    hist = LatencyHistogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        hist.observe(value)
    assert hist.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert hist.count == 4 and hist.sum == pytest.approx(3.65)


def test_event_labels_fold_into_other_past_the_limit() -> None:
    hists = EventHistograms()
    for i in range(MAX_EVENT_LABELS + 10):
        hists.for_event(f"e{i}").observe(0.001)
    assert len(hists) == MAX_EVENT_LABELS + 1
    assert hists[OTHER_EVENT].count == 10
    assert hists.for_event("e0") is hists["e0"]  # known names keep their own


@pytest.mark.parametrize(
    ("count", "spread", "expected"),
    [
        (0, 10.0, (0, 0.0)),
        (1, 10.0, (1, 0.0)),
        (500, 18.0, (2, 18.0 / 360)),  # at most one batch per 50 ms
        (10, 18.0, (1, 1.8)),  # one socket per batch, spread evenly
        (1000, 0.01, (1000, 0.0)),  # no time: everyone at once
    ],
)
def test_drain_batches(count: int, spread: float, expected: tuple[int, float]) -> None:
    size, step = batches(count, spread)
    assert (size, pytest.approx(step)) == (expected[0], pytest.approx(expected[1]))
    if count:
        steps = -(-count // size)
        assert steps * step <= spread + 1e-9


def record(msg: str, level: int = logging.WARNING, *args: object) -> logging.LogRecord:
    return logging.LogRecord("wsfleet.bus", level, __file__, 1, msg, args, None)


def test_repeated_warnings_pass_once_per_interval_with_a_count() -> None:
    now = [0.0]
    flt = RepeatFilter(10.0, clock=lambda: now[0])
    assert flt.filter(record("Redis %s down", logging.WARNING, "a"))
    for _ in range(5):
        assert not flt.filter(record("Redis %s down", logging.WARNING, "b"))
    assert flt.filter(record("another message"))
    assert flt.filter(record("debug", logging.DEBUG)) and flt.filter(record("debug", logging.DEBUG))
    now[0] = 10.5
    passed = record("Redis %s down", logging.WARNING, "c")
    assert flt.filter(passed)
    assert passed.repeats == 5  # type: ignore[attr-defined]


def test_json_log_lines_have_the_node_and_the_exception() -> None:
    formatter = JsonFormatter("pod-1")
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        rec = logging.LogRecord(
            "wsfleet.x", logging.ERROR, __file__, 1, "oops %d", (3,), sys.exc_info()
        )
    entry = json.loads(formatter.format(rec))
    assert (entry["node"], entry["level"], entry["msg"]) == ("pod-1", "ERROR", "oops 3")
    assert "ValueError: bad" in entry["exc"]


def test_setup_logging_writes_text_with_the_node_name() -> None:
    stream = io.StringIO()
    handler = setup_logging("INFO", LogFormat.TEXT, "pod-2", 10.0, stream)
    try:
        logging.getLogger("wsfleet.test").info("hello %s", "there")
        assert "INFO [pod-2] wsfleet.test: hello there" in stream.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)


def test_config_file_sections_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "a.toml"
    good.write_text('port = 1\n[server]\nheartbeat = "hb"\n[ops]\ninternal_port = 5\n')
    assert load_config_file(good) == {"port": 1, "heartbeat": "hb", "internal_port": 5}
    twice = tmp_path / "b.toml"
    twice.write_text("port = 1\n[node]\nport = 2\n")
    with pytest.raises(ConfigFileError, match="'port' is given twice"):
        load_config_file(twice)
    broken = tmp_path / "c.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigFileError, match="is not valid TOML"):
        load_config_file(broken)


def test_ops_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="internal_port must be between 0 and 65535"):
        OpsSettings(internal_port=70000)
    assert OpsSettings(internal_port=None).internal_port is None


def test_redis_password_from_a_mounted_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    node = RedisNode.parse(f"redis://10.0.0.1:6380/2?password_file={secret}")
    assert (node.host, node.port, node.db, node.password) == ("10.0.0.1", 6380, 2, "s3cret")
    assert "s3cret" not in str(node)
    with pytest.raises(ValueError, match="cannot read password_file"):
        RedisNode.parse(f"redis://h?password_file={tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="unknown option"):
        RedisNode.parse("redis://h?passwd=x")


def test_channel_kinds_are_a_closed_set() -> None:
    s = FleetSettings(redis=(RedisNode(),), server_name="n")
    assert s.channel_kind("csbp:server_bridge") == "bridge"
    assert s.channel_kind("ws:private_socket") == "private"
    assert s.channel_kind("ws:broadcast") == "broadcast"
    assert s.channel_kind("csbp:wsfleet:control") == "control"
    assert s.channel_kind("csbp:wsfleet:node:n2") == "inbox"
    assert s.channel_kind("ws:chat") == "room"
    assert s.channel_kind("my-channel") == "custom"
