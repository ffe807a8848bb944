"""Issue 13 on the client wire, frame by frame: lone surrogates (as JSON.stringify writes them)
and a missing ``payload`` (JavaScript ``undefined``) versus ``"payload": null``."""

from __future__ import annotations

from typing import Any

from tests.conftest import Connect, StartServer

import wsfleet
from wsfleet.server import Acknowledge, Server, Socket


def app(server: Server) -> None:
    @server.on_system("connection")
    def accept(socket: Socket) -> None:
        server.set_user_socket(socket.request.param("id") or "c", socket)

    @server.on("echo")  # the usual handler: None for a missing payload, as before
    def echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        socket.data.setdefault("echo", []).append(payload)
        if ack is not None:
            ack(payload)

    @server.on("returns")
    def returns(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        return {"got": payload}

    @server.on("raw-echo", missing=wsfleet.MISSING)  # opted in: MISSING differs from None
    def raw_echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        socket.data.setdefault("raw", []).append(payload)
        socket.emit("pushed", payload)
        return payload

    @server.on("push")
    def push(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        socket.emit("pushed", payload)


async def test_lone_surrogates_round_trip_through_handler_ack_and_push(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=app)
    client = await connect(running.url())
    # exactly what the original client's JSON.stringify sends for {s: "\ud800x"}
    await client.send('{"event":"echo","payload":{"s":"\\ud800x","t":"é"},"callbackId":"c1"}')
    assert await client.recv() == '{"payload":{"s":"\\ud800x","t":"é"},"callbackId":"c1"}'
    socket = running.server.get_socket("c")
    assert socket is not None and socket.data["echo"] == [{"s": "\ud800x", "t": "é"}]
    await client.send('{"event":"push","payload":["\\udc00","\\ud83d\\ude00"]}')
    assert await client.recv() == '{"event":"pushed","payload":["\\udc00","\U0001f600"]}'
    assert running.server.stats.malformed_frames.total() == 0


async def test_missing_payload_is_none_for_usual_handlers_and_echoes_omit_it(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=app)
    client = await connect(running.url())
    await client.send('{"event":"echo","callbackId":"c1"}')
    assert await client.recv() == '{"callbackId":"c1"}'  # as the original acks undefined
    await client.send('{"event":"echo","payload":null,"callbackId":"c2"}')
    assert await client.recv() == '{"payload":null,"callbackId":"c2"}'
    await client.send('{"event":"returns","callbackId":"c3"}')
    assert await client.recv() == '{"payload":{"got":null},"callbackId":"c3"}'
    socket = running.server.get_socket("c")
    assert socket is not None and socket.data["echo"] == [None, None]


async def test_handlers_can_tell_a_missing_payload_from_null(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(setup=app)
    client = await connect(running.url())
    await client.send('{"event":"raw-echo","callbackId":"c1"}')
    assert await client.recv() == '{"event":"pushed"}'  # emit(MISSING) leaves payload out
    assert await client.recv() == '{"callbackId":"c1"}'  # returning MISSING too
    await client.send('{"event":"raw-echo","payload":null,"callbackId":"c2"}')
    assert await client.recv() == '{"event":"pushed","payload":null}'
    # a returned None is no ack (documented): the next frame is the following push
    await client.send('{"event":"push","payload":0}')
    assert await client.recv() == '{"event":"pushed","payload":0}'
    socket = running.server.get_socket("c")
    assert socket is not None and socket.data["raw"] == [wsfleet.MISSING, None]
