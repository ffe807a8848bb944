"""Pure parts of the bus: envelopes pinned to captured bytes, routing, de-duplication, buffers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus
from wsfleet.bus.codec import BusCodec, BusDecodeError, Serialization
from wsfleet.bus.dedup import DuplicateFilter
from wsfleet.bus.nodelist import read_node_list
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.outage import OutageBuffer
from wsfleet.bus.routing import Router, Strategy
from wsfleet.bus.rpc import TIMEOUT_MESSAGE, CallMode, Outcome, PendingCalls
from wsfleet.bus.settings import FleetSettings

# Captured from the original framework (spec §5.4 a): nodeA asks nodeB.
CAPTURED_REQUEST = (
    bytes.fromhex(
        "81a46461746185a56576656e74a361736bac73656e646572536572766572a56e6f646541a77061796c6f6164"
        "81a17101ac74617267657453657276657291a56e6f646542aa63616c6c6261636b4964b5"
    )
    + b"nodeA-mwwttrk5-fl38-1"
)


def test_request_envelope_is_byte_identical_to_the_original() -> None:
    message = env.request("ask", "nodeA", {"q": 1}, ["nodeB"], "nodeA-mwwttrk5-fl38-1", None)
    assert BusCodec().dumps(message) == CAPTURED_REQUEST
    parsed = env.parse_bridge(BusCodec().loads(CAPTURED_REQUEST))
    assert isinstance(parsed, env.CrossRequest)
    assert (parsed.event, parsed.sender, parsed.payload, parsed.targets, parsed.callback_id) == (
        "ask",
        "nodeA",
        {"q": 1},
        ["nodeB"],
        "nodeA-mwwttrk5-fl38-1",
    )


def test_json_mode_matches_the_observed_original_json() -> None:
    message = env.request("hello", "jsonNode", {"a": 1}, [], None, None)
    assert BusCodec(Serialization.JSON).dumps(message) == (
        b'{"data":{"event":"hello","senderServer":"jsonNode","payload":{"a":1},"targetServer":[]}}'
    )


def test_observed_private_message_and_reply_shapes() -> None:
    private = env.private('{"event":"priv","payload":{"x":1}}', ["u2"], "nodeA", None)
    assert private == {
        "data": '{"event":"priv","payload":{"x":1}}',
        "socketId": "u2",
        "senderServer": "nodeA",
    }
    reply = env.reply("nodeB", "id1", {"answer": 42}, None)
    assert reply["data"]["event"] == "_Cs_Cb_" and reply["data"]["targetServer"] == []
    parsed = env.parse_bridge(reply)
    assert isinstance(parsed, env.CrossReply) and parsed.payload == {"answer": 42}


def test_extra_metadata_is_one_extra_key_original_nodes_ignore() -> None:
    message = env.broadcast("{}", "n", {"b": "boot", "s": 7})
    assert set(message) == {"data", "senderServer", "wsf"}
    assert env.meta_of(message) == env.Meta(boot="boot", seq=7)


@pytest.mark.parametrize(
    ("parser", "message"),
    [
        (env.parse_bridge, {"data": 5}),
        (env.parse_bridge, {"data": {"event": "e"}}),
        (env.parse_bridge, {"data": {"senderServer": "x", "isCallback": True}}),
        (env.parse_bridge, {"data": {"senderServer": "x", "event": "e", "targetServer": "y"}}),
        (env.parse_private, {"data": b"bytes", "socketId": "a"}),
        (env.parse_private, {"data": "{}"}),
        (env.parse_room, {"data": "{}", "roomId": "r"}),
        (env.parse_control, {"args": {}}),
    ],
)
def test_w16_wrong_shapes_raise_a_clear_decode_error(parser, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BusDecodeError):
        parser(message)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_bus_decode_error(raw: bytes) -> None:
    for mode in Serialization:
        with contextlib.suppress(BusDecodeError):
            BusCodec(mode).loads(raw)


def test_msgpack_decodes_node_buffers_and_dates() -> None:
    raw = msgpack.packb({"b": b"\x00\x01", "d": msgpack.Timestamp(1, 0)}, use_bin_type=True)
    decoded = BusCodec().loads(raw)
    assert decoded["b"] == b"\x00\x01" and decoded["d"].year == 1970


@dataclass
class FakeLink:
    key: str
    latency: float = 0.0


def test_hash_routing_is_stable_and_moves_few_keys() -> None:
    router = Router(Strategy.HASH)
    three = [FakeLink("a"), FakeLink("b"), FakeLink("c")]
    keys = [f"socket{i}" for i in range(3000)]
    before = {k: router.pick(three, k).key for k in keys}  # type: ignore[union-attr]
    assert before == {k: router.pick(three, k).key for k in keys}  # type: ignore[union-attr]
    assert {v for v in before.values()} == {"a", "b", "c"}
    after = {k: router.pick(three[:2], k).key for k in keys}  # type: ignore[union-attr]
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "c" for k in moved)  # only keys of the removed node move


def test_original_strategies() -> None:
    links = [FakeLink("a", 0.5), FakeLink("b", 0.1), FakeLink("c", 0.3)]
    rr = Router(Strategy.ROUND_ROBIN)
    assert [rr.pick(links, "k").key for _ in range(4)] == ["a", "b", "c", "a"]  # type: ignore[union-attr]
    assert Router(Strategy.FASTEST).pick(links, "k").key == "b"  # type: ignore[union-attr]
    assert Router(Strategy.RANDOM).pick(links, "k") in links
    assert Router().pick([], "k") is None


def test_duplicate_filter_window_and_senders() -> None:
    seen = DuplicateFilter(window=3, max_senders=2)
    assert seen.is_new("a", 1) and not seen.is_new("a", 1)
    for seq in (2, 3, 4):
        assert seen.is_new("a", seq)
    assert seen.is_new("a", 1)  # fell out of the window
    assert seen.is_new("b", 1) and seen.is_new("c", 1)  # "a" is forgotten (least recent)
    assert seen.is_new("a", 4)
    assert seen.dropped == 1


def test_outage_buffer_bounds() -> None:
    buffer: OutageBuffer[int] = OutageBuffer(max_items=2, max_age=1.0)
    assert buffer.offer(1, 0.0) and buffer.offer(2, 0.5) and not buffer.offer(3, 0.5)
    expired: list[int] = []
    assert buffer.expire(1.2, expired.append) == 1 and expired == [1]
    assert buffer.drain() == [2] and len(buffer) == 0
    assert (buffer.refused, buffer.expired) == (1, 1)


def test_redis_node_addresses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert RedisNode.parse("10.1.2.3:6380").key == "10.1.2.3:6380/0"
    node = RedisNode.parse("rediss://user:p%40ss@redis.example:6390/2")
    assert (node.tls, node.username, node.password, node.db) == (True, "user", "p@ss", 2)
    assert "p@ss" not in str(node)
    for bad in ("", "http://x", "redis://:abc", "redis://h/x"):
        with pytest.raises(ValueError):
            RedisNode.parse(bad)
    assert read_node_list(tmp_path) is None
    (tmp_path / "redis").write_text("# nodes\n127.0.0.1:1\n127.0.0.1:2, 127.0.0.1:1\n")
    assert [n.port for n in read_node_list(tmp_path) or ()] == [1, 2]


async def test_pending_calls_modes_and_outcomes() -> None:
    calls = PendingCalls("node-abcdef", max_pending=10)
    calls.is_alive = lambda name: name != "gone"
    call = calls.open(
        mode=CallMode.ALL,
        expected=3,
        expected_nodes=frozenset({"a", "b", "gone"}),
        timeout=0.05,
        want_future=True,
    )
    assert call.callback_id.startswith("abcdef-")
    assert calls.resolve(call.callback_id, "a", {"payload": 1})
    assert not calls.resolve("unknown", "a", {})
    assert call.future is not None
    result = await asyncio.wait_for(call.future, 1)
    assert not result.success and result.outcomes == {
        "a": Outcome.ANSWERED,
        "b": Outcome.TIMED_OUT,
        "gone": Outcome.LEFT,
    }
    assert len(calls) == 0
    seen: list[dict[str, object]] = []
    count = calls.open(
        mode=CallMode.COUNT,
        expected=2,
        expected_nodes=None,
        timeout=5,
        want_future=False,
        callback=seen.append,
    )
    calls.resolve(count.callback_id, "x", {"payload": 1})
    calls.resolve(count.callback_id, "x", {"payload": 2})  # the same node may answer twice
    assert [r["remainingResponses"] for r in seen] == [1, 0] and len(calls) == 0


async def test_a_quorum_ends_once_the_nodes_still_to_answer_cannot_make_it() -> None:
    calls = PendingCalls("n")
    call = calls.open(
        mode=CallMode.QUORUM,
        expected=2,
        expected_nodes=frozenset({"a", "b", "c"}),
        timeout=30,
        want_future=True,
    )
    calls.resolve(call.callback_id, "a", {"payload": 1})
    assert calls.node_left("b") == 1 and len(calls) == 1  # c can still make it
    assert calls.node_left("a") == 0  # answered already: nothing changes
    calls.node_left("c")
    assert call.future is not None and call.future.done()
    result = call.future.result()
    assert not result.success and result.message == (
        "quorum of 2 out of reach: b, c left the fleet before replying"
    )
    assert result.outcomes == {"a": Outcome.ANSWERED, "b": Outcome.LEFT, "c": Outcome.LEFT}


async def test_calls_share_one_timer_and_expire_in_deadline_order() -> None:
    calls = PendingCalls("node-abcdef", max_pending=100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    expired_at: dict[str, float] = {}
    long = calls.open(
        mode=CallMode.FIRST, expected=1, expected_nodes=None, timeout=0.3, want_future=True
    )
    short = calls.open(
        mode=CallMode.FIRST, expected=1, expected_nodes=None, timeout=0.1, want_future=True
    )
    answered = calls.open(
        mode=CallMode.FIRST, expected=1, expected_nodes=None, timeout=0.05, want_future=True
    )
    cancelled = calls.open(
        mode=CallMode.FIRST, expected=1, expected_nodes=None, timeout=0.05, want_future=True
    )
    assert calls.resolve(answered.callback_id, "a", {"payload": 1})
    assert calls.cancel(cancelled.callback_id)
    for call in (long, short):
        assert call.future is not None
        call.future.add_done_callback(
            lambda _, cid=call.callback_id: expired_at.setdefault(cid, loop.time())
        )
    assert answered.future is not None and (await answered.future).success
    assert cancelled.future is not None and cancelled.future.cancelled()
    assert long.future is not None and short.future is not None
    results = await asyncio.wait_for(asyncio.gather(long.future, short.future), 2)
    assert [r.message for r in results] == [TIMEOUT_MESSAGE] * 2
    assert 0.09 <= expired_at[short.callback_id] - started < expired_at[long.callback_id] - started
    assert expired_at[long.callback_id] - started >= 0.29
    assert calls.timed_out == 2 and len(calls) == 0
    assert not calls._deadlines and calls._timer is None  # nothing is left behind


async def test_a_call_answered_in_time_never_times_out_and_its_deadline_is_dropped() -> None:
    calls = PendingCalls("n", max_pending=10_000)
    for _ in range(1000):
        call = calls.open(
            mode=CallMode.FIRST, expected=1, expected_nodes=None, timeout=5, want_future=False
        )
        calls.resolve(call.callback_id, "a", {})
    assert calls.timed_out == 0 and len(calls) == 0
    assert sum(len(q) for q in calls._deadlines.values()) <= 1  # trimmed as calls open
    calls.fail_all("closing")
    assert calls._timer is None


async def test_mode_all_counts_each_expected_node_once() -> None:
    calls = PendingCalls("n")
    call = calls.open(
        mode=CallMode.ALL,
        expected=2,
        expected_nodes=frozenset({"a", "b"}),
        timeout=5,
        want_future=True,
    )
    calls.resolve(call.callback_id, "a", {"payload": 1})
    calls.resolve(call.callback_id, "a", {"payload": 2})  # a repeat does not count twice
    calls.resolve(call.callback_id, "stranger", {"payload": 3})  # nor does an unexpected node
    assert call.remaining() == 1 and len(calls) == 1
    calls.resolve(call.callback_id, "b", {"payload": 4})
    assert call.future is not None
    result = await call.future
    assert result.success and result.payloads == {"a": 2, "stranger": 3, "b": 4}


def test_call_ids_keep_the_original_format() -> None:
    calls = PendingCalls("server7node1")
    ids = [calls.new_id() for _ in range(200)]
    assert len(set(ids)) == 200
    for i, callback_id in enumerate(ids, start=1):
        prefix, ms, rand, counter = callback_id.split("-")
        assert prefix == "7node1"
        assert abs(int(ms, 36) - int(time.time() * 1000)) < 60_000
        assert len(rand) == 4 and all(c in "0123456789abcdefghijklmnopqrstuvwxyz" for c in rand)
        assert int(counter, 36) == i


@pytest.mark.parametrize("mode", list(Serialization))
def test_the_bus_drops_its_own_echo_before_decoding_and_keeps_the_rest(
    mode: Serialization,
) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    settings = FleetSettings(server_name="me", serialization=mode)
    bus = Bus(settings, lambda channel, message: seen.append((channel, message)))
    other = Bus(settings, lambda channel, message: None)  # the same name, another boot
    mine = bus.codec.dumps(env.broadcast("f", "me", bus.meta()))
    theirs = other.codec.dumps(env.broadcast("f", "x", other.meta()))
    garbage = b"\xc1" + bus._echo_marker  # undecodable, but it carries our marker
    for data in (mine, theirs, garbage, theirs):
        bus._receive(None, b"ws:broadcast", data)  # type: ignore[arg-type]
    assert bus.stats.self_echo_dropped == 2
    assert bus.stats.duplicates_dropped == 1  # the same (boot, seq) twice
    assert seen == [("ws:broadcast", bus.codec.loads(theirs))]


def test_dedup_of_verified_messages_refuses_replays_from_before_the_window() -> None:
    from wsfleet.bus.dedup import Verdict

    seen = DuplicateFilter(window=3)
    assert [seen.check("a", s) for s in (1, 2, 3, 4)] == [Verdict.NEW] * 4  # 1 left the window
    assert seen.check("a", 4) is Verdict.DUPLICATE
    assert seen.check("a", 1) is Verdict.REPLAY  # an old message brought back
    assert seen.check("a", 6) is Verdict.NEW and seen.check("a", 5) is Verdict.NEW  # reordered


def test_dedup_of_unverified_messages_keys_on_the_bytes_too() -> None:
    seen = DuplicateFilter(window=3)
    assert seen.is_new("a", 1, hash(b"forged")) and seen.is_new("a", 2, hash(b"forged"))
    assert seen.is_new("a", 1, hash(b"genuine"))  # same numbers, other bytes: not suppressed
    assert not seen.is_new("a", 1, hash(b"genuine"))  # a retried publish: same bytes
