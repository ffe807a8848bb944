"""The connector over real sockets, against a raw aiohttp server speaking the original protocol."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from wsfleet.client import (
    ConnectionClosedError,
    ConnectorState,
    ReconnectAbortedError,
    TransportError,
    UpgradeRefusedError,
)

ID = r"[0-9a-z]+-[0-9a-z]{4}-[0-9a-z]+"


async def opened(make_client, event_log, **options: Any):
    client = make_client(**options)
    log = event_log(client)
    await client.connect()
    await client.wait_open(timeout=5)
    return client, log


async def test_params_reach_the_server_byte_for_byte(make_client, event_log, server) -> None:
    params = {"id": "u1", "token": "a b&c=d", "n": 5, "arr": [1, 2], "nul": None, "ok": True}
    await opened(make_client, event_log, custom_params=params)
    conn = await server.next_connection()
    assert conn.raw_path == "/ws?id=u1&token=a+b%26c%3Dd&n=5&arr=1%2C2&nul=null&ok=true"
    assert conn.query_string == "id=u1&token=a b%26c%3Dd&n=5&arr=1,2&nul=null&ok=true"


async def test_frames_on_the_wire(make_client, event_log, server, bound) -> None:
    client, _ = await opened(make_client, event_log)
    assert client.emit("chat", {"text": "hé", "list": [1, None]})
    assert await server.next_frame() == '{"event":"chat","payload":{"text":"hé","list":[1,null]}}'
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.emit("echo", {"x": 1}, lambda err, data: done.set_result((err, data)))
    frame = await server.next_frame()
    assert re.fullmatch(r'\{"event":"echo","payload":\{"x":1\},"callbackId":"' + ID + r'"\}', frame)
    assert await asyncio.wait_for(done, bound) == (None, {"x": 1})


async def test_emit_with_ack_and_promise(make_client, event_log) -> None:
    client, _ = await opened(make_client, event_log)
    assert await client.emit_with_ack("echo", [1, "two"]) == [1, "two"]
    assert await client.emit_with_ack("ack-empty", 1) is None
    assert await client.emit_with_promise("echo", {"a": 1}) == {"success": True, "data": {"a": 1}}
    result = await client.emit_with_promise("silent", 1, callback_timeout=0.2)
    assert result["success"] is False and result["errorCode"] == "CALLBACK_TIMEOUT"
    assert re.fullmatch("Is promise callback timeout: " + ID, result["error"])


async def test_pushed_events_and_the_events_iterator(make_client, event_log) -> None:
    client, _ = await opened(make_client, event_log)
    got: list[Any] = []
    client.on_event("news", got.append)
    stream = client.events("news")
    for n in range(3):
        client.emit("push", {"event": "news", "payload": {"n": n}})
    items = [await asyncio.wait_for(stream.__anext__(), 5) for _ in range(3)]
    assert items == [("news", {"n": 0}), ("news", {"n": 1}), ("news", {"n": 2})]
    assert got == [{"n": 0}, {"n": 1}, {"n": 2}]
    waiting = asyncio.ensure_future(client.next_event("solo", timeout=5))
    client.emit("push", {"event": "solo", "payload": "x"})
    assert await waiting == "x"
    await client.aclose()
    assert [item async for item in stream] == []  # ends with the connector


async def test_malformed_frames_do_not_break_the_connection(make_client, event_log) -> None:
    client, _ = await opened(make_client, event_log)
    for raw in ("garbage", "[1,2]", '{"event":""}'):
        client.emit("raw", raw)
    assert await client.emit_with_ack("echo", "still fine") == "still fine"
    assert client.stats.malformed_frames == 3


async def test_an_oversized_frame_is_a_transport_error(make_client, event_log) -> None:
    client, log = await opened(make_client, event_log, max_frame_bytes=1024)
    client.emit("raw", "x" * 2048)
    (error,) = await log.wait("error")
    assert isinstance(error, TransportError)
    assert "close" not in log.names()
    await log.wait("reconnect")
    await client.wait_open(timeout=5)


async def test_heartbeat_latency(make_client, event_log, server) -> None:
    client, log = await opened(make_client, event_log, ping_interval=0.05)
    await log.wait("ping")
    (latency,) = await log.wait("pong")
    assert isinstance(latency, float) and 0.0 <= latency < 1000.0
    assert client.latency == latency
    assert "" in (await server.next_connection()).frames


async def test_pong_timeout_closes_with_4002(make_client, event_log, server) -> None:
    server.echo_heartbeat = False
    _, log = await opened(make_client, event_log, ping_interval=0.05, pong_timeout=0.1)
    conn = await server.next_connection()
    await log.wait("pong-timeout")
    assert await log.wait("close") == (4002, "pong timeout")
    assert await asyncio.wait_for(conn.close_code, 5) == 4002
    assert (await log.wait("reconnect"))[0].repeat == 1


async def test_protocol_pings_from_the_server_are_answered(make_client, event_log) -> None:
    client, _ = await opened(make_client, event_log)
    assert await client.emit_with_ack("proto-ping", 1) == "pong"


@pytest.mark.parametrize(("graceful", "expected_code"), [(True, 1001), (False, 1006)])
async def test_reconnect_after_a_server_restart(
    make_client, event_log, server, graceful, expected_code
) -> None:
    client, log = await opened(make_client, event_log)
    await server.next_connection()
    await server.stop(graceful=graceful)
    code, _ = await log.wait("close")
    assert code == expected_code
    await log.wait("reconnect")
    await log.wait("error")  # nobody listens on the port now
    await server.start()  # same port
    await client.wait_open(timeout=5)
    await server.next_connection()
    assert client.repeat == 0
    assert await client.emit_with_ack("echo", "back") == "back"


async def test_refused_upgrade_is_an_error_and_follows_the_schedule(make_client, event_log) -> None:
    client = make_client(custom_params={"token": "deny"}, repeat_limit=1)
    log = event_log(client)
    await client.connect()
    (error,) = await log.wait("error")
    assert isinstance(error, UpgradeRefusedError) and error.status == 401
    assert (await log.wait("reconnect"))[0].repeat == 1
    (error,) = await log.wait("error")
    assert isinstance(error, UpgradeRefusedError)
    assert await log.wait("repeat-limit") == (1,)
    with pytest.raises(ReconnectAbortedError):
        await client.wait_open()


@pytest.mark.parametrize("code", [4011, 4012])
async def test_terminal_close_codes_stop_reconnecting(make_client, event_log, server, code) -> None:
    client, log = await opened(make_client, event_log)
    client.emit("close", {"code": code, "reason": "auth"})
    assert await log.wait("close") == (code, "auth")
    assert client.state is ConnectorState.STOPPED
    assert "reconnect" not in log.names()
    with pytest.raises(ReconnectAbortedError):
        await client.wait_open()
    assert len(server.connections) == 1


async def test_service_restart_code_reconnects(make_client, event_log, server) -> None:
    client, log = await opened(make_client, event_log)
    client.emit("close", {"code": 1012, "reason": "restart"})
    assert await log.wait("close") == (1012, "restart")
    await log.wait("reconnect")
    await log.wait("open")
    assert len(server.connections) == 2


async def test_pending_acks_fail_at_once_on_disconnect(make_client, event_log, bound) -> None:
    client, _ = await opened(make_client, event_log, callback_timeout=30.0)
    calls = [asyncio.ensure_future(client.emit_with_ack("silent", n)) for n in range(2)]
    promise = asyncio.ensure_future(client.emit_with_promise("silent", 3))
    client.emit("close", {"code": 1012})
    for call in calls:
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(call, bound)  # far less than the 30 s timeout
        assert info.value.code == 1012
    result = await asyncio.wait_for(promise, bound)
    assert result["errorCode"] == "WS_CLOSED"


async def test_manual_close(make_client, event_log, server) -> None:
    client, log = await opened(make_client, event_log)
    conn = await server.next_connection()
    client.manual_close()
    assert await log.wait("close") == (4001, "client manual close")
    assert await asyncio.wait_for(conn.close_code, 5) == 4001
    assert client.state is ConnectorState.CLOSED
    await client.aclose()
    assert len(server.connections) == 1


async def test_async_with_and_json_round_trip(server) -> None:
    from wsfleet.client import Connector

    payload = {"nested": {"list": [1, 2.5, "é", None, True]}, "big": 2**53 - 1}
    async with Connector(server.url, close_timeout=0.5) as client:
        await client.wait_open(timeout=5)
        assert await client.emit_with_ack("echo", payload) == payload
    assert client.state is ConnectorState.CLOSED
    assert json.loads((await server.next_connection()).frames[0])["payload"] == payload
