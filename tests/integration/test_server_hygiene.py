"""Connection hygiene and the in-flight limit, on real sockets: async ``message`` handlers share
the in-flight bound, JSON nesting is limited, connection caps answer with a clear status, the
close codes the server sent are the ones counted."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from bench.flood import client_frame, raw_upgrade
from tests.conftest import Connect, StartServer

from wsfleet.server import ServerSettings, Socket


async def test_async_message_handlers_count_in_the_inflight_limit(
    start_server: StartServer, connect: Connect
) -> None:
    gate = asyncio.Event()
    started: list[str] = []
    running = await start_server(ServerSettings(max_inflight_handlers=2))

    @running.server.on_system("message")
    async def on_message(socket: Socket, data: str | bytes) -> None:
        started.append(str(data))
        await gate.wait()

    client = await connect(running.url())
    for i in range(5):
        await client.send(f'{{"event":"none","payload":{i}}}')
    await client.send("")  # the heartbeat waits behind the paused reader
    with pytest.raises(TimeoutError):
        await client.recv(timeout=0.3)
    assert len(started) == 2, started  # not 5 (or 6): the limit holds for message handlers
    gate.set()
    assert await client.recv() == ""
    assert len(started) == 6


def nested_frame(levels: int, callback_id: str) -> str:
    return (
        '{"event":"echo","payload":'
        + "[" * levels
        + "1"
        + "]" * levels
        + f',"callbackId":"{callback_id}"}}'
    )


async def test_frames_nested_deeper_than_the_limit_are_dropped_and_the_socket_stays(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(ServerSettings(max_json_depth=64))
    running.server.on("echo", lambda socket, payload, ack: payload)
    client = await connect(running.url())
    await client.send(nested_frame(300, "deep"))  # orjson reads it, but could not ack it
    await client.send(nested_frame(64, "ok"))
    assert (await client.recv()).endswith('],"callbackId":"ok"}')
    assert running.server.stats.malformed_frames["depth"] == 1


async def test_connection_caps_answer_503_and_429(start_server: StartServer) -> None:
    running = await start_server(ServerSettings(max_connections=2))
    async with aiohttp.ClientSession() as session:
        a = await session.ws_connect(running.url())
        b = await session.ws_connect(running.url())
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(running.url())
        assert refused.value.status == 503
        async with session.get(
            running.url().replace("ws://", "http://"),
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        ) as resp:
            assert resp.status == 503 and "full" in await resp.text()
        await a.close()
        await b.close()
    assert running.server.stats.connections_refused["503"] == 2

    per_ip = await start_server(ServerSettings(max_connections_per_ip=1))
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(per_ip.url())
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(per_ip.url())
        assert refused.value.status == 429
        await first.close()
        async with asyncio.timeout(5):  # the slot is free again once the first one closed
            while per_ip.server.hub.connection_count:
                await asyncio.sleep(0.01)
        again = await session.ws_connect(per_ip.url())
        await again.close()


def _close_code_after(port: int, frame: bytes) -> int:
    """Send raw frames; the code of the close frame the server answers with. Answers to valid
    frames before the bad one may come first (the native engine handles frames in order; the
    aiohttp hook checks a whole read for masks before parsing any of it)."""
    sock = raw_upgrade(port)
    try:
        sock.sendall(frame)
        data = b""
        while True:
            while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data[:1] != b"\x81" or len(data) < 2 + (data[1] & 0x7F):
                break
            data = data[2 + (data[1] & 0x7F) :]  # a short text frame before the close frame
        assert data[:1] == b"\x88", data
        return int.from_bytes(data[2:4], "big")
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(b"x" * 2000), 1009),  # bigger than max_message_size
        (client_frame(b"\xff\xfe"), 1007),  # not UTF-8 in a text frame
        (bytes([0xF1]) + client_frame(b"x")[1:], 1002),  # reserved bits set
        (client_frame(b'{"event":"e"}', masked=False), 1002),  # RFC 6455 5.1: must be masked
        (client_frame(b"") + client_frame(b"x" * 300, masked=False), 1002),  # after a good one
    ],
    ids=["1009", "1007", "1002-reserved-bits", "1002-unmasked", "1002-unmasked-second"],
)
async def test_server_initiated_closes_are_counted_as_the_code_sent(
    start_server: StartServer, frame: bytes, code: int
) -> None:
    running = await start_server(ServerSettings(max_message_size=1024))
    assert await asyncio.to_thread(_close_code_after, running.port, frame) == code
    async with asyncio.timeout(5):
        while not running.server.stats.connections_closed:
            await asyncio.sleep(0.01)
    assert dict(running.server.stats.connections_closed) == {code: 1}
