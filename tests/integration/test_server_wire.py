"""The client wire protocol against a live server, byte by byte (spec §10 items 1-6)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from tests.conftest import Connect, StartServer

from wsfleet.server import Acknowledge, Server, ServerSettings, Socket


def echo_app(server: Server) -> None:
    @server.on_system("connection")
    def accept(socket: Socket) -> None:
        server.set_user_socket(socket.request.param("id") or f"c{socket.connection_id}", socket)

    @server.on("echo")
    def echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        if ack is not None:
            ack(payload)

    @server.on("bare-ack")
    def bare(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        if ack is not None:
            ack()

    @server.on("returns")
    async def returns(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        await asyncio.sleep(0)
        return {"doubled": payload * 2}


async def test_item1_heartbeat_is_echoed_as_text_before_json(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=echo_app)
    client = await connect(running.url())
    await client.send("")
    assert await client.recv() == ""
    assert running.server.stats.heartbeats == 1


async def test_item1_custom_heartbeat_and_binary_frames(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(ServerSettings(heartbeat="ping"), setup=echo_app)
    client = await connect(running.url())
    await client.send("ping")
    assert await client.recv() == "ping"
    await client.ws.send_bytes(b'{"event":"echo","payload":1,"callbackId":"b1"}')
    assert await client.recv() == '{"payload":1,"callbackId":"b1"}'


async def test_item2_ack_shapes(start_server: StartServer, connect: Connect) -> None:
    running = await start_server(setup=echo_app)
    client = await connect(running.url())
    await client.send('{"event":"echo","payload":{"hello":"world"},"callbackId":"mwwttquz-b5ou-1"}')
    assert await client.recv() == '{"payload":{"hello":"world"},"callbackId":"mwwttquz-b5ou-1"}'
    await client.send('{"event":"bare-ack","payload":1,"callbackId":"k"}')
    assert await client.recv() == '{"callbackId":"k"}'
    await client.send('{"event":"returns","payload":21,"callbackId":"r"}')
    assert await client.recv() == '{"payload":{"doubled":42},"callbackId":"r"}'


async def test_item2_callback_id_must_be_1_to_64_chars(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=echo_app)
    client = await connect(running.url())
    await client.send('{"event":"echo","payload":1,"callbackId":"' + "a" * 65 + '"}')
    await client.send('{"event":"echo","payload":2,"callbackId":"' + "b" * 64 + '"}')
    # the 65-char id gets no ack; the next frame is the 64-char one's
    assert await client.recv() == '{"payload":2,"callbackId":"' + "b" * 64 + '"}'
    assert running.server.stats.bad_callback_ids == 1


async def test_item3_pushed_events_have_no_callback_id_and_no_nan(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=echo_app)
    client = await connect(running.url(query="id=u1"))
    await client.send("")
    assert await client.recv() == ""  # the connection handler has run
    assert running.server.to_socket_id("u1", "priv", {"x": 1, "nan": float("nan")})
    assert await client.recv() == '{"event":"priv","payload":{"x":1,"nan":null}}'


async def test_item4_no_unsolicited_heartbeat_frames(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=echo_app)
    client = await connect(running.url(query="id=u1"))
    await client.send('{"event":"echo","payload":"","callbackId":"e"}')
    assert await client.recv() == '{"payload":"","callbackId":"e"}'
    running.server.broadcast("b", "")
    assert await client.recv() == '{"event":"b","payload":""}'


async def test_item5_dead_sockets_are_aborted_after_two_ping_intervals(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(ServerSettings(server_ping_interval=0.1), setup=echo_app)
    # autoping=False: this client never answers protocol pings, like a dead peer
    silent = await connect(running.url(), autoping=False)
    answering = await connect(running.url())
    received: asyncio.Queue[str] = asyncio.Queue()

    async def read_answering() -> None:  # aiohttp answers pings while it reads
        async for msg in answering.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                received.put_nowait(msg.data)

    reader = asyncio.create_task(read_answering())
    pings = 0
    async with asyncio.timeout(5):
        while True:
            msg = await silent.ws.receive()
            if msg.type is aiohttp.WSMsgType.PING:
                pings += 1
                continue
            break
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert pings >= 1
    assert running.server.stats.dead_sockets_reaped >= 1
    # the client that answers pings is still served
    await answering.send('{"event":"echo","payload":"still here","callbackId":"s"}')
    assert await asyncio.wait_for(received.get(), 5) == '{"payload":"still here","callbackId":"s"}'
    reader.cancel()


async def test_item6_params_and_path_on_the_socket(
    start_server: StartServer, connect: Connect
) -> None:
    seen: list[Socket] = []
    running = await start_server(setup=lambda s: s.on_system("connection", seen.append))
    client = await connect(
        running.url("/chat", "x=1&id=u1&token=a+b%26c%3Dd&n=5&arr=1%2C2&nul=null")
    )
    await client.send("")
    assert await client.recv() == ""
    (socket,) = seen
    assert socket.path == "chat"
    assert dict(socket.params) == {
        "x": "1",
        "id": "u1",
        "token": "a b&c=d",
        "n": "5",
        "arr": "1,2",
        "nul": "null",
    }
