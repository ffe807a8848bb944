"""Connector: connecting, heartbeat, reconnect schedule, close policy and shutdown.

Time only moves with ``clock.advance()``; the fake transport's attempts are accepted or refused
by the test, so every schedule below is exact and nothing waits for real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsfleet.client import (
    Connector,
    ConnectorState,
    HandshakeError,
    ReconnectAbortedError,
    ReconnectInfo,
    TransportError,
    UpgradeRefusedError,
)
from wsfleet.client.testing import ManualClock

OBSERVED = {  # spec §3.5 "observed" run
    "fast_reconnect_interval": 0.1,
    "fast_reconnect_threshold": 2,
    "reconnect_max_interval": 1.0,
    "repeat_limit": 6,
}


def reconnect_info(args: tuple[Any, ...]) -> ReconnectInfo:
    (info,) = args
    assert isinstance(info, ReconnectInfo)
    return info


# --------------------------------------------------------------------------- connecting


async def test_connect_opens_with_the_params_in_the_url(
    make_connector, transport, recorder
) -> None:
    c = make_connector("ws://h/chat?x=1", custom_params={"id": "u1", "token": "a b"})
    rec = recorder(c)
    assert c.state is ConnectorState.NEW
    await c.connect()
    await c.connect()  # harmless
    attempt = await transport.next_attempt()
    assert attempt.url == "ws://h/chat?x=1&id=u1&token=a+b"
    assert c.state is ConnectorState.CONNECTING and not c.is_open
    attempt.accept()
    assert await rec.expect("open") == ()
    assert c.state is ConnectorState.OPEN and c.is_open
    assert not c.reconnecting and c.repeat == 0
    assert c.stats.opens == 1


async def test_wait_open(make_connector, transport, clock, step) -> None:
    c = make_connector()
    with pytest.raises(RuntimeError, match="connect"):
        await c.wait_open()
    await c.connect()
    waiting = asyncio.ensure_future(c.wait_open(timeout=5.0))
    (await transport.next_attempt()).accept()
    await asyncio.wait_for(waiting, 2)
    await c.wait_open()  # at once when open


async def test_wait_open_times_out_on_the_clock(make_connector, transport, clock, step) -> None:
    c = make_connector()
    await c.connect()
    await transport.next_attempt()  # never answered
    waiting = asyncio.ensure_future(c.wait_open(timeout=3.0))
    await step(lambda: clock.advance(3.0))
    with pytest.raises(TimeoutError):
        await waiting


async def test_connect_failure_fires_error_then_schedules(
    make_connector, transport, recorder, clock
) -> None:
    c = make_connector(**OBSERVED)
    rec = recorder(c)
    await c.connect()
    (await transport.next_attempt()).refuse(UpgradeRefusedError(401))
    (error,) = await rec.expect("error")
    assert isinstance(error, UpgradeRefusedError) and error.status == 401
    assert reconnect_info(await rec.expect("reconnect")) == ReconnectInfo(1, 0.1)
    assert c.state is ConnectorState.WAITING and c.reconnecting
    assert c.stats.connect_failures == 1


async def test_observed_schedule_then_repeat_limit(
    make_connector, transport, recorder, clock
) -> None:
    # spec §3.5 observed: 100, 100, 2xx, 4xx, 8xx, 1000 ms, then repeat-limit 6
    c = make_connector(**OBSERVED)
    rec = recorder(c)
    await c.connect()
    delays: list[float] = []
    for _ in range(6):
        (await transport.next_attempt()).refuse()
        await rec.expect("error")
        info = reconnect_info(await rec.expect("reconnect"))
        assert info.repeat == len(delays) + 1
        delays.append(info.timeout)
        assert [t.delay for t in clock.active_timers()] == [info.timeout]
        clock.advance(info.timeout)
    (await transport.next_attempt()).refuse()
    await rec.expect("error")
    assert await rec.expect("repeat-limit") == (6,)
    assert delays[:2] == [0.1, 0.1]
    assert 0.2 <= delays[2] < 0.3 and 0.4 <= delays[3] < 0.5 and 0.8 <= delays[4] < 0.9
    assert delays[5] == 1.0
    assert c.state is ConnectorState.STOPPED
    assert clock.active_timers() == []
    with pytest.raises(ReconnectAbortedError, match="limit"):
        await c.wait_open()
    # reconnect() at the limit emits repeat-limit again; with a reset it starts over
    c.reconnect()
    assert await rec.expect("repeat-limit") == (6,)
    c.reconnect(repeat_reset=True)
    assert reconnect_info(await rec.expect("reconnect")) == ReconnectInfo(1, 0.1)


async def test_w17_reconnect_during_a_scheduled_reconnect_reschedules_once(
    make_connector, transport, recorder, clock
) -> None:
    c = make_connector(fast_reconnect_interval=1.0)
    rec = recorder(c)
    await c.connect()
    (await transport.next_attempt()).refuse()
    await rec.expect("error")
    assert reconnect_info(await rec.expect("reconnect")) == ReconnectInfo(1, 1.0)
    clock.advance(0.5)
    c.reconnect()  # honoured (the original ignored it), and not doubled
    assert reconnect_info(await rec.expect("reconnect")) == ReconnectInfo(1, 1.0)
    assert len(clock.active_timers()) == 1
    clock.advance(0.5)
    assert transport.attempts.empty()  # the first timer was cancelled
    clock.advance(0.5)
    await transport.next_attempt()
    assert transport.opened == 2


async def test_reconnect_with_reset_restarts_the_schedule(
    make_connector, transport, recorder, clock
) -> None:
    c = make_connector(fast_reconnect_threshold=1, fast_reconnect_interval=1.0)
    rec = recorder(c)
    await c.connect()
    for _ in range(3):
        (await transport.next_attempt()).refuse()
        await rec.expect("error")
        clock.advance(reconnect_info(await rec.expect("reconnect")).timeout)
    (await transport.next_attempt()).refuse()
    await rec.expect("error")
    assert reconnect_info(await rec.expect("reconnect")).repeat == 4
    c.reconnect(repeat_reset=True)
    assert reconnect_info(await rec.expect("reconnect")) == ReconnectInfo(1, 1.0)


async def test_reconnect_while_open(open_connector, transport, clock) -> None:
    o = await open_connector()
    c = o.connector
    c.reconnect()
    assert await o.link.wait_closed() == (4001, "client manual close")
    # like the original: no close event for a reconnect the app asked for
    assert reconnect_info(await o.rec.expect("reconnect")) == ReconnectInfo(1, 3.0)
    clock.advance(3.0)
    (await transport.next_attempt()).accept()
    await o.rec.expect("open")
    assert c.repeat == 0 and c.stats.opens == 2


async def test_reconnect_while_connecting_cancels_the_attempt(
    make_connector, transport, recorder
) -> None:
    c = make_connector()
    rec = recorder(c)
    await c.connect()
    attempt = await transport.next_attempt()
    c.reconnect()
    assert reconnect_info(await rec.expect("reconnect")).repeat == 1
    assert attempt.future.cancelled()


async def test_reconnect_is_ignored_before_connect_and_after_close(make_connector) -> None:
    c = make_connector()
    c.reconnect()
    assert c.state is ConnectorState.NEW
    c.manual_close()
    c.reconnect()
    assert c.state is ConnectorState.CLOSED


# --------------------------------------------------------------------------- close policy


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1012, 4002, 4003, 4999])
async def test_reconnects_after_a_non_terminal_close(open_connector, code) -> None:
    o = await open_connector()
    o.link.server_close(code, "bye")
    assert await o.rec.expect("close") == (code, "bye")
    assert reconnect_info(await o.rec.expect("reconnect")).repeat == 1


@pytest.mark.parametrize("code", [4001, 4010, 4011, 4012])
async def test_no_reconnect_after_a_terminal_close(open_connector, clock, code) -> None:
    o = await open_connector()
    c = o.connector
    o.link.server_close(code, "auth")
    assert await o.rec.expect("close") == (code, "auth")
    assert c.state is ConnectorState.STOPPED
    assert o.rec.pending() == []
    assert clock.active_timers() == []
    with pytest.raises(ReconnectAbortedError) as info:
        await c.wait_open()
    assert info.value.close_code == code
    c.reconnect()  # the app may still resume
    assert reconnect_info(await o.rec.expect("reconnect")).repeat == 1


async def test_policy_false_is_the_original_behaviour(open_connector) -> None:
    o = await open_connector(reconnect_on_close=False)
    o.link.server_close(1012)
    await o.rec.expect("close")
    assert o.connector.state is ConnectorState.STOPPED


async def test_policy_function_gets_the_code(open_connector) -> None:
    seen: list[int | None] = []

    def policy(code: int | None) -> bool:
        seen.append(code)
        return code == 4011

    o = await open_connector(reconnect_on_close=policy)
    o.link.server_close(4011)
    await o.rec.expect("close")
    assert reconnect_info(await o.rec.expect("reconnect")).repeat == 1
    assert seen == [4011]


async def test_original_pattern_reconnect_from_the_close_listener(open_connector, clock) -> None:
    o = await open_connector(reconnect_on_close=False)
    c = o.connector
    c.on("close", lambda code, reason: c.reconnect())
    o.link.server_close(1006)
    await o.rec.expect("close")
    assert reconnect_info(await o.rec.expect("reconnect")).repeat == 1
    assert len(clock.active_timers()) == 1  # one attempt, not two


async def test_manual_close_from_the_close_listener(open_connector) -> None:
    o = await open_connector()
    c = o.connector
    c.on("close", lambda code, reason: c.manual_close())
    o.link.server_close(1012)
    await o.rec.expect("close")
    assert c.state is ConnectorState.CLOSED
    assert o.rec.pending() == []


async def test_transport_error_fires_error_and_reconnects(open_connector) -> None:
    o = await open_connector()
    o.link.fail(TransportError("boom"))
    (error,) = await o.rec.expect("error")
    assert isinstance(error, TransportError)
    assert reconnect_info(await o.rec.expect("reconnect")).repeat == 1
    assert "close" not in o.rec.names()


async def test_send_failure_is_a_transport_error(open_connector) -> None:
    o = await open_connector()
    o.link.closed.set_result((1006, ""))  # the link refuses writes from now on
    o.connector.emit("x", 1)
    (error,) = await o.rec.expect("error")
    assert isinstance(error, TransportError)
    await o.rec.expect("reconnect")


# --------------------------------------------------------------------------- heartbeat


async def test_heartbeat_ping_pong_latency(open_connector, clock) -> None:
    o = await open_connector(messages=True, ping_interval=10.0)
    c = o.connector
    clock.advance(9.9)
    assert o.rec.pending() == []
    clock.advance(0.1)
    await o.rec.expect("ping")
    assert await o.link.next_sent() == ""
    clock.advance(0.05)
    o.link.push("")
    assert await o.rec.expect("message") == ("",)
    (latency,) = await o.rec.expect("pong")
    assert latency == pytest.approx(50.0)
    assert c.latency == pytest.approx(50.0)
    assert [t.delay for t in clock.active_timers()] == [10.0]  # re-armed from the pong


async def test_heartbeat_with_a_custom_ping_msg(open_connector, clock) -> None:
    o = await open_connector(ping_interval=1.0, ping_msg="ping")
    clock.advance(1.0)
    await o.rec.expect("ping")
    assert await o.link.next_sent() == "ping"
    o.link.push("ping")
    await o.rec.expect("pong")


async def test_pong_timeout_closes_with_4002_and_reconnects(open_connector, clock) -> None:
    o = await open_connector(ping_interval=1.0, pong_timeout=0.5)
    clock.advance(1.0)
    await o.rec.expect("ping")
    clock.advance(0.5)
    await o.rec.expect("pong-timeout")
    assert await o.link.wait_closed() == (4002, "pong timeout")
    assert await o.rec.expect("close") == (4002, "pong timeout")
    assert reconnect_info(await o.rec.expect("reconnect")).repeat == 1


async def test_w17_heartbeat_timers_stop_with_the_connection(open_connector, clock) -> None:
    o = await open_connector(ping_interval=1.0, fast_reconnect_interval=60.0)
    clock.advance(1.0)
    await o.rec.expect("ping")  # the pong timer is armed now
    o.link.server_close(1012)
    await o.rec.expect("close")
    await o.rec.expect("reconnect")
    assert [t.delay for t in clock.active_timers()] == [60.0]  # only the reconnect timer
    clock.advance(59.0)
    assert o.rec.pending() == []  # no late ping / pong-timeout for the dead socket


async def test_set_ping_interval(open_connector, clock) -> None:
    o = await open_connector(ping_interval=10.0)
    c = o.connector
    with pytest.raises(ValueError):
        c.set_ping_interval(0)
    with pytest.raises(TypeError):
        c.set_ping_interval("1")  # type: ignore[arg-type]
    clock.advance(5.0)
    c.set_ping_interval(2.0, immediate=True)
    assert c.ping_interval == 2.0
    clock.advance(2.0)
    await o.rec.expect("ping")


async def test_the_ping_interval_survives_reconnects(open_connector, transport, clock) -> None:
    o = await open_connector(ping_interval=10.0)
    o.connector.set_ping_interval(4.0)
    o.link.server_close(1012)
    await o.rec.expect("close")
    clock.advance(reconnect_info(await o.rec.expect("reconnect")).timeout)
    (await transport.next_attempt()).accept()
    await o.rec.expect("open")
    clock.advance(4.0)
    await o.rec.expect("ping")


# --------------------------------------------------------------------------- closing


async def test_w17_manual_close_fires_close_and_is_final(open_connector, transport, clock) -> None:
    o = await open_connector()
    c = o.connector
    stream = c.events()
    c.manual_close()
    assert c.state is ConnectorState.CLOSED and not c.is_open
    assert await o.link.wait_closed() == (4001, "client manual close")
    assert await o.rec.expect("close") == (4001, "client manual close")
    assert [item async for item in stream] == []
    assert c.emit("x", 1) is False
    with pytest.raises(ReconnectAbortedError):
        await c.wait_open()
    with pytest.raises(RuntimeError, match="closed"):
        await c.connect()
    c.manual_close()  # idempotent
    clock.advance(1000.0)
    assert transport.attempts.empty()
    assert o.rec.pending() == []


async def test_manual_close_while_waiting(make_connector, transport, recorder, clock) -> None:
    c = make_connector()
    rec = recorder(c)
    await c.connect()
    (await transport.next_attempt()).refuse()
    await rec.expect("error")
    await rec.expect("reconnect")
    await c.aclose()
    assert rec.pending() == []  # no socket was open: no close event
    assert clock.active_timers() == []
    assert transport.closed


async def test_manual_close_while_connecting(make_connector, transport) -> None:
    c = make_connector()
    await c.connect()
    attempt = await transport.next_attempt()
    await c.aclose()
    assert attempt.future.cancelled()


async def test_manual_close_before_connect(make_connector) -> None:
    c = make_connector()
    c.manual_close()
    assert c.state is ConnectorState.CLOSED
    with pytest.raises(RuntimeError):
        await c.connect()


async def test_async_with_leaves_no_task_behind(clock, transport) -> None:
    before = asyncio.all_tasks()
    async with Connector("ws://h/", clock=clock, transport=transport, close_timeout=0.01) as c:
        (await transport.next_attempt()).accept()
        await c.wait_open()

        async def slow_listener(code: int, reason: str) -> None:
            await asyncio.Event().wait()  # never ends: aclose must cancel it

        c.on("close", slow_listener)
        c.emit("x", 1)
    assert asyncio.all_tasks() == before
    assert transport.closed


async def test_w17_a_bad_url_keeps_retrying(clock: ManualClock, recorder) -> None:
    # the original stopped for good when the URL was rejected inside a scheduled reconnect
    c = Connector("ws://[bad", clock=clock, fast_reconnect_interval=1.0)
    rec = recorder(c)
    try:
        await c.connect()
        for repeat in (1, 2, 3):
            (error,) = await rec.expect("error")
            assert isinstance(error, HandshakeError)
            assert reconnect_info(await rec.expect("reconnect")).repeat == repeat
            clock.advance(1.0)
    finally:
        await c.aclose()
