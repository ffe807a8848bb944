"""Bad setting values: one sentence naming the setting, the value and what is accepted, with the
same wording whether the value came from a flag, a WSFLEET_* variable or the TOML file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsfleet import cli
from wsfleet.ops.setting_values import plain_text

CASES = [
    (
        "redis",
        "notahost:xx",
        "Redis node 'notahost:xx' has an invalid port; expected HOST[:PORT] or "
        "redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), comma-separated",
    ),
    ("duplicate_policy", "kick", "expected one of close-old, reject-new, replace"),
    ("serialization", "xml", "expected one of msgpack, json"),
    ("strategy", "best", "expected one of hash, random, round-robin, fastest"),
    ("log_level", "LOUD", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("port", "http", "expected a port number from 0 to 65535 (0 picks a free one)"),
    ("internal_port", "nine", "expected a whole number, or off"),
    ("server_ping_interval", "soon", "expected a number"),
    ("auto_unsubscribe", "maybe", "expected true or false (also 1/0, yes/no, on/off)"),
]


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str]]:
    for name in [k for k in os.environ if k.startswith("WSFLEET_")]:
        monkeypatch.delenv(name)
    code = cli.main(["config", *argv])
    err = capsys.readouterr().err
    return code, err.splitlines()


@pytest.mark.parametrize(("name", "value", "reason"), CASES)
def test_a_bad_value_reads_the_same_from_flag_env_and_file(
    name: str,
    value: str,
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flag = "--" + name.replace("_", "-")
    code, lines = run([flag, value], capsys, monkeypatch)
    assert code == 2
    assert lines == [f"wsfleet: configuration error: {flag} {value!r} is invalid: {reason}"]

    env = "WSFLEET_" + name.upper()
    monkeypatch.setenv(env, value)
    code, lines = cli.main(["config"]), capsys.readouterr().err.splitlines()
    monkeypatch.delenv(env)
    assert code == 2
    assert lines == [f"wsfleet: configuration error: {env}={value!r} is invalid: {reason}"]

    config = tmp_path / "wsfleet.toml"
    config.write_text(f'{name} = "{value}"\n')
    code, lines = run(["--config", str(config)], capsys, monkeypatch)
    assert code == 2
    assert lines == [
        f"wsfleet: configuration error: {name} = {value!r} in {config} is invalid: {reason}"
    ]


def test_a_number_of_the_wrong_kind_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wsfleet.toml"
    config.write_text("port = 70000\nauto_unsubscribe = 3\n")
    code, lines = run(["--config", str(config)], capsys, monkeypatch)
    assert code == 2
    assert lines == [
        f"wsfleet: configuration error: port = 70000 in {config} is invalid: "
        "expected a port number from 0 to 65535 (0 picks a free one)",
        f"wsfleet: configuration error: auto_unsubscribe = 3 in {config} is invalid: "
        "expected true or false (also 1/0, yes/no, on/off)",
    ]


def test_a_rule_of_the_settings_names_where_the_value_came_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, lines = run(["--server-ping-interval", "-1"], capsys, monkeypatch)
    assert code == 2
    assert lines == [
        "wsfleet: configuration error: server_ping_interval must be positive, got -1.0 "
        "(from flag --server-ping-interval)"
    ]


def test_off_on_the_command_line_turns_the_internal_port_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WSFLEET_INTERNAL_PORT", "9300")
    args = cli.build_parser().parse_args(["serve", "--internal-port", "off"])
    assert cli.resolve(args, {"WSFLEET_INTERNAL_PORT": "9300"})["ops"].internal_port is None
    args = cli.build_parser().parse_args(["serve"])
    assert cli.resolve(args, {"WSFLEET_INTERNAL_PORT": "off"})["ops"].internal_port is None
    assert cli.resolve(args, {})["ops"].internal_port == 9100


def test_log_level_is_case_insensitive() -> None:
    args = cli.build_parser().parse_args(["serve", "--log-level", "debug"])
    assert cli.resolve(args, {})["log_level"] == "DEBUG"


def test_help_has_no_docs_markup_and_shows_defaults_and_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "``" not in text and ":meth:" not in text and ":class:" not in text
    assert "Must equal the clients' pingMsg" in text
    assert "one of close-old, reject-new, replace; default: close-old" in text
    assert "one of msgpack, json; default: msgpack" in text
    assert "--port PORT port to bind, 0 = any free port (default: 9000)" in text
    assert "--app-dir DIR" in text and "(default: the current directory)" in text
    assert "(default: 20.0) [WSFLEET_SERVER_PING_INTERVAL]" in text
    assert text.startswith("usage: wsfleet serve [options]")


def test_plain_text_drops_restructuredtext_roles_and_literals() -> None:
    assert plain_text("see :meth:`Socket.mark_background`,\n ``pingMsg`` and :class:`~a.B`") == (
        "see Socket.mark_background, pingMsg and a.B"
    )
