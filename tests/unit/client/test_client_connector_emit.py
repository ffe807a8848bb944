"""Connector: emits, acks, results and pushed events, on a fake transport and a manual clock."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest

from wsfleet.client import (
    AckTimeoutError,
    ConnectionClosedError,
    NotConnectedError,
    ReconnectAbortedError,
)
from wsfleet.protocol import EncodeError

ID = re.compile(r"^[0-9a-z]+-[0-9a-z]{4}-[0-9a-z]+$")


def callback_id_of(frame: str) -> str:
    cid = json.loads(frame)["callbackId"]
    assert ID.match(cid), cid
    return str(cid)


def recorder_callback() -> tuple[asyncio.Future[tuple[Any, Any]], Any]:
    future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    def callback(err: Any, data: Any) -> None:
        future.set_result((err, data))

    return future, callback


# --------------------------------------------------------------------------- frames


async def test_emit_without_callback_sends_the_original_frame(open_connector) -> None:
    o = await open_connector()
    assert o.connector.emit("chat", {"text": "hé", "n": [1, 2.5, None]})
    assert await o.link.next_sent() == '{"event":"chat","payload":{"text":"hé","n":[1,2.5,null]}}'


async def test_emit_with_callback_sends_a_callback_id_and_gets_the_ack(
    open_connector, bound
) -> None:
    o = await open_connector()
    future, callback = recorder_callback()
    assert o.connector.emit("echo", {"x": 1}, callback)
    frame = await o.link.next_sent()
    cid = callback_id_of(frame)
    assert frame == '{"event":"echo","payload":{"x":1},"callbackId":"' + cid + '"}'
    assert cid.endswith("-1")  # the counter starts at 1
    o.link.push(json.dumps({"payload": {"y": 2}, "callbackId": cid}))
    assert await asyncio.wait_for(future, bound) == (None, {"y": 2})
    assert o.connector.pending_acks == 0


async def test_emit_with_ack_returns_the_payload(open_connector) -> None:
    o = await open_connector()
    call = asyncio.ensure_future(o.connector.emit_with_ack("echo", [1]))
    cid = callback_id_of(await o.link.next_sent())
    o.link.push(json.dumps({"payload": [1, "ok"], "callbackId": cid}))
    assert await call == [1, "ok"]


async def test_ack_without_payload(open_connector) -> None:
    o = await open_connector()
    call = asyncio.ensure_future(o.connector.emit_with_ack("x", 1))
    promise = asyncio.ensure_future(o.connector.emit_with_promise("x", 1))
    for _ in range(2):
        o.link.push(json.dumps({"callbackId": callback_id_of(await o.link.next_sent())}))
    assert await call is None
    assert await promise == {"success": True, "data": None}


async def test_an_ack_with_an_event_key_is_an_ack(open_connector) -> None:
    # spec §2.3: a truthy callbackId makes the frame an ack, never an event
    o = await open_connector()
    seen: list[Any] = []
    o.connector.on_event("x", seen.append)
    call = asyncio.ensure_future(o.connector.emit_with_ack("x", 1))
    cid = callback_id_of(await o.link.next_sent())
    o.link.push(json.dumps({"event": "x", "payload": 2, "callbackId": cid}))
    assert await call == 2
    await o.sync()
    assert seen == []


async def test_promise_result_shapes(open_connector) -> None:
    o = await open_connector()
    c = o.connector
    assert await c.emit_with_promise("", 1) == {
        "success": False,
        "error": "No event provided in emitWithPromise",
    }
    assert await c.emit_with_promise("x", None) == {
        "success": False,
        "error": "Data cannot be null or undefined",
    }
    call = asyncio.ensure_future(c.emit_with_promise("x", {"a": 1}))
    o.link.push(
        json.dumps({"payload": {"b": 2}, "callbackId": callback_id_of(await o.link.next_sent())})
    )
    assert await call == {"success": True, "data": {"b": 2}}


# --------------------------------------------------------------------------- not open


async def test_not_open_before_connect(make_connector) -> None:
    c = make_connector()
    future, callback = recorder_callback()
    assert c.emit("x", 1) is False
    assert c.emit("x", 1, callback) is False
    # the callback runs at once, as in the original
    assert future.result() == ({"error": "WebSocket is not open", "errorCode": "WS_NOT_OPEN"}, None)
    with pytest.raises(NotConnectedError):
        await c.emit_with_ack("x", 1)
    assert await c.emit_with_promise("x", 1) == {
        "success": False,
        "error": "WebSocket is not open",
        "errorCode": "WS_NOT_OPEN",
    }


async def test_not_open_while_reconnecting(open_connector, transport) -> None:
    o = await open_connector()
    o.link.server_close(1012)
    await o.rec.expect("close")
    await o.rec.expect("reconnect")
    with pytest.raises(NotConnectedError):
        await o.connector.emit_with_ack("x", 1)


# --------------------------------------------------------------------------- timeouts


async def test_callback_timeout(open_connector, clock, bound) -> None:
    o = await open_connector(callback_timeout=5.0)
    future, callback = recorder_callback()
    o.connector.emit("slow", 1, callback)
    cid = callback_id_of(await o.link.next_sent())
    clock.advance(4.999)
    assert not future.done()
    clock.advance(0.001)
    error = {"error": f"Is callback timeout: {cid}", "errorCode": "CALLBACK_TIMEOUT"}
    assert await asyncio.wait_for(future, bound) == (error, None)


async def test_emit_with_ack_timeout_is_a_timeout_error(open_connector, clock) -> None:
    o = await open_connector()
    call = asyncio.ensure_future(o.connector.emit_with_ack("slow", 1, timeout=0.5))
    cid = callback_id_of(await o.link.next_sent())
    clock.advance(0.5)
    with pytest.raises(AckTimeoutError) as info:
        await call
    assert isinstance(info.value, TimeoutError)
    assert info.value.callback_id == cid
    assert o.connector.pending_acks == 0


async def test_promise_timeout_keeps_the_original_text(open_connector, clock) -> None:
    o = await open_connector()
    call = asyncio.ensure_future(o.connector.emit_with_promise("slow", 1, callback_timeout=1.0))
    cid = callback_id_of(await o.link.next_sent())
    clock.advance(1.0)
    assert await call == {
        "success": False,
        "error": f"Is promise callback timeout: {cid}",
        "errorCode": "CALLBACK_TIMEOUT",
    }


async def test_late_ack_is_counted_and_ignored(open_connector, clock) -> None:
    o = await open_connector()
    call = asyncio.ensure_future(o.connector.emit_with_ack("slow", 1, timeout=1.0))
    cid = callback_id_of(await o.link.next_sent())
    clock.advance(1.0)
    with pytest.raises(AckTimeoutError):
        await call
    o.link.push(json.dumps({"payload": 1, "callbackId": cid}))
    o.link.push(json.dumps({"payload": 1, "callbackId": "unknown-id"}))
    await o.sync()
    assert o.connector.stats.unknown_acks == 2


async def test_on_pending_fires_once(open_connector, clock) -> None:
    o = await open_connector()
    pending: list[str] = []
    call = asyncio.ensure_future(
        o.connector.emit_with_ack(
            "slow", 1, on_pending=lambda: pending.append("p"), pending_timeout=0.2
        )
    )
    cid = callback_id_of(await o.link.next_sent())
    clock.advance(0.1)
    assert pending == []
    clock.advance(0.1)
    assert pending == ["p"]
    o.link.push(json.dumps({"payload": "done", "callbackId": cid}))
    assert await call == "done"
    assert pending == ["p"]


async def test_on_pending_uses_the_default_pending_timeout(open_connector, clock) -> None:
    o = await open_connector(pending_timeout=0.3)
    pending: list[str] = []
    o.connector.emit("slow", 1, lambda err, data: None, on_pending=lambda: pending.append("p"))
    await o.link.next_sent()
    clock.advance(0.3)
    assert pending == ["p"]


async def test_async_on_pending_and_callback_run_as_tasks(open_connector, clock, bound) -> None:
    o = await open_connector()
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pending_ran = asyncio.Event()

    async def on_pending() -> None:
        pending_ran.set()

    async def callback(err: Any, data: Any) -> None:
        done.set_result((err, data))

    o.connector.emit("slow", 1, callback, on_pending=on_pending)
    cid = callback_id_of(await o.link.next_sent())
    clock.advance(0.1)
    await asyncio.wait_for(pending_ran.wait(), bound)
    o.link.push(json.dumps({"payload": 7, "callbackId": cid}))
    assert await asyncio.wait_for(done, bound) == (None, 7)


# --------------------------------------------------------------------------- W17: close


async def test_w17_pending_acks_fail_at_once_when_the_connection_drops(
    open_connector, bound
) -> None:
    o = await open_connector(callback_timeout=60.0)
    c = o.connector
    future, callback = recorder_callback()
    call = asyncio.ensure_future(c.emit_with_ack("slow", 1))
    promise = asyncio.ensure_future(c.emit_with_promise("slow", 2))
    c.emit("slow", 3, callback)
    frames = [json.loads(await o.link.next_sent()) for _ in range(3)]
    ids = {frame["payload"]: frame["callbackId"] for frame in frames}
    o.link.server_close(1012, "restart")  # no clock advance: nothing may wait for the 60 s
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(call, bound)
    assert (info.value.code, info.value.reason, info.value.callback_id) == (1012, "restart", ids[1])
    result = await asyncio.wait_for(promise, bound)
    assert result["success"] is False and result["errorCode"] == "WS_CLOSED"
    err, data = await asyncio.wait_for(future, bound)
    assert err["errorCode"] == "WS_CLOSED" and ids[3] in err["error"] and data is None
    assert c.pending_acks == 0


async def test_acks_fail_before_the_close_listeners_run(open_connector, bound) -> None:
    o = await open_connector()
    order: list[str] = []
    o.connector.emit("slow", 1, lambda err, data: order.append(err["errorCode"]))
    o.connector.on("close", lambda code, reason: order.append(f"close {code}"))
    await o.link.next_sent()
    o.link.server_close(1001)
    await o.rec.expect("close")
    assert order == ["WS_CLOSED", "close 1001"]


# --------------------------------------------------------------------------- limits & misuse


async def test_too_many_pending_acks(open_connector) -> None:
    o = await open_connector(max_pending_acks=2)
    results: list[Any] = []
    for _ in range(3):
        o.connector.emit("slow", 1, lambda err, data: results.append(err))
    assert [r["errorCode"] for r in results] == ["TOO_MANY_PENDING_ACKS"]
    assert o.connector.pending_acks == 2


async def test_send_queue_full(open_connector) -> None:
    o = await open_connector(send_queue_size=1)
    results: list[Any] = []
    assert o.connector.emit("a", 1) is True  # queued; the writer has not run yet
    assert o.connector.emit("b", 2) is False
    o.connector.emit("c", 3, lambda err, data: results.append(err))
    assert [r["errorCode"] for r in results] == ["SEND_QUEUE_FULL"]
    assert await o.link.next_sent() == '{"event":"a","payload":1}'


async def test_misuse_raises(open_connector) -> None:
    c = (await open_connector()).connector
    with pytest.raises(TypeError):
        c.emit("", 1)
    with pytest.raises(TypeError):
        c.emit("x", None)
    with pytest.raises(TypeError):
        await c.emit_with_ack(None, 1)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        c.emit("x", {1, 2}, lambda err, data: None)
    assert c.pending_acks == 0
    with pytest.raises(ValueError):
        await c.emit_with_ack("x", 1, timeout=0)
    with pytest.raises(ValueError):
        await c.emit_with_promise("x", 1, pending_timeout=-1)
    with pytest.raises(TypeError):
        c.emit("x", 1, lambda err, data: None, on_pending="no")  # type: ignore[arg-type]


async def test_cancelled_emit_with_ack_forgets_its_entry(open_connector, clock) -> None:
    o = await open_connector()
    call = asyncio.ensure_future(o.connector.emit_with_ack("slow", 1))
    await o.link.next_sent()
    assert o.connector.pending_acks == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert o.connector.pending_acks == 0
    assert clock.active_timers() and all(
        t.delay == o.connector.ping_interval for t in clock.active_timers()
    )


# --------------------------------------------------------------------------- pushed events


async def test_pushed_events_reach_on_event_only(open_connector) -> None:
    # W11/W17: a server event named like a connector event must not fire connector listeners
    o = await open_connector()
    c = o.connector
    pongs: list[Any] = []
    c.on("pong", pongs.append)
    got: list[tuple[str, Any]] = []
    c.on_event("pong", lambda p: got.append(("pong", p)))
    c.on_event("open", lambda p: got.append(("open", p)))
    o.link.push('{"event":"pong","payload":{"evil":true}}')
    o.link.push('{"event":"open","payload":1}')
    await o.sync()
    assert got == [("pong", {"evil": True}), ("open", 1)]
    assert pongs == []
    assert "open" not in o.rec.names()[1:]


async def test_listener_registration(open_connector) -> None:
    o = await open_connector()
    c = o.connector
    with pytest.raises(ValueError, match="on_event"):
        c.on("chat", print)  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        c.off("chat")  # type: ignore[arg-type]
    got: list[Any] = []

    @c.on_event("chat", tag="ui")
    def first(payload: Any) -> None:
        got.append(("first", payload))

    @c.once_event("chat")
    def second(payload: Any) -> None:
        got.append(("second", payload))

    append = got.append
    assert c.on_event("other", append) is append
    o.link.push('{"event":"chat","payload":1}')
    o.link.push('{"event":"chat","payload":2}')
    await o.sync()
    assert got == [("first", 1), ("second", 1), ("first", 2)]
    assert c.off_event("chat", "ui") == 1
    assert c.off_event("chat") == 0
    assert c.off_event("other", append) == 1


async def test_listener_errors_are_logged_and_do_not_break_anything(
    open_connector, caplog, bound
) -> None:
    o = await open_connector()
    c = o.connector
    got: list[Any] = []

    def bad(payload: Any) -> None:
        raise RuntimeError("sync boom")

    async def bad_async(payload: Any) -> None:
        raise RuntimeError("async boom")

    async def good_async(payload: Any) -> None:
        got.append(payload)

    c.on_event("x", bad)
    c.on_event("x", bad_async)
    c.on_event("x", good_async)
    c.on_event("x", got.append)
    with caplog.at_level(logging.ERROR, logger="wsfleet.client"):
        o.link.push('{"event":"x","payload":1}')
        await o.sync()
        # the async listeners run as tasks: wait for them through a later event
        o.link.push('{"event":"x","payload":2}')
        await o.sync()
    assert 1 in got and 2 in got
    messages = caplog.text
    assert "sync boom" in messages
    assert "async boom" in messages


async def test_malformed_and_binary_frames_are_counted_and_ignored(open_connector) -> None:
    o = await open_connector(messages=True)
    for frame in ("not json", "[1]", '{"event":5}', '{"callbackId":5}', '{"payload":1}', "NaN"):
        o.link.push(frame)
    o.link.push_binary(b'{"event":"x","payload":1}')
    await o.sync()
    stats = o.connector.stats
    assert stats.malformed_frames == 6
    assert stats.binary_frames == 1
    messages = [args[0] for name, args in o.rec.log if name == "message"]
    assert messages[:6] == [
        "not json",
        "[1]",
        '{"event":5}',
        '{"callbackId":5}',
        '{"payload":1}',
        "NaN",
    ]
    assert messages[6] == b'{"event":"x","payload":1}'
    assert o.connector.is_open


async def test_events_iterator_and_overflow(open_connector) -> None:
    o = await open_connector()
    c = o.connector
    everything = c.events()
    only_b = c.events("b", maxsize=2)
    for n in range(3):
        o.link.push(json.dumps({"event": "b", "payload": n}))
    o.link.push('{"event":"a","payload":"x"}')
    await o.sync()
    assert [await everything.__anext__() for _ in range(4)] == [
        ("b", 0),
        ("b", 1),
        ("b", 2),
        ("a", "x"),
    ]
    assert only_b.dropped == 1
    assert c.stats.events_dropped == 1
    await c.aclose()
    assert [item async for item in only_b] == [("b", 1), ("b", 2)]
    assert [item async for item in everything] == [("__sync__", None)]


async def test_next_event(open_connector, clock, step) -> None:
    o = await open_connector()
    c = o.connector
    waiting = asyncio.ensure_future(c.next_event("hello", timeout=5.0))
    await step(lambda: o.link.push('{"event":"hello","payload":{"n":1}}'))
    assert await waiting == {"n": 1}
    late = asyncio.ensure_future(c.next_event("never", timeout=5.0))
    await step(lambda: clock.advance(5.0))
    with pytest.raises(TimeoutError):
        await late
    closing = asyncio.ensure_future(c.next_event("never"))
    await step(c.manual_close)
    with pytest.raises(ReconnectAbortedError):
        await closing
    with pytest.raises(ReconnectAbortedError):
        await c.next_event("never")
