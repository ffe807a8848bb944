"""Single-node features against a live server: rooms, registry, limits, run modes, W-bugs."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import Connect, RawClient, Running, StartServer

from wsfleet.protocol import CloseCode
from wsfleet.server import (
    Acknowledge,
    DuplicatePolicy,
    DuplicateSocketError,
    RateLimitPolicy,
    Refuse,
    Server,
    ServerSettings,
    Socket,
    UnknownSocketError,
    UpgradeRequest,
)


def by_id(request: UpgradeRequest) -> str | None:
    return request.param("id")


async def hello(client: RawClient) -> None:
    """Round-trip a heartbeat: everything the server did on connect has happened."""
    await client.send("")
    assert await client.recv() == ""


async def connected(running: Running, connect: Connect, *ids: str) -> list[RawClient]:
    clients = [await connect(running.url(query=f"id={i}")) for i in ids]
    for client in clients:
        await hello(client)
    return clients


# -- registry and broadcasts -------------------------------------------------------------------


async def test_w3_only_accepted_sockets_receive_broadcasts(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(authenticate=by_id)
    (member,) = await connected(running, connect, "u1")
    anonymous = await connect(running.url())  # no id: not accepted
    await hello(anonymous)
    assert running.server.connection_count == 2 and running.server.socket_count == 1
    assert running.server.broadcast("news", 1) == 1
    assert await member.recv() == '{"event":"news","payload":1}'
    await hello(anonymous)  # the next frame it sees is its own heartbeat, not the broadcast


async def test_to_socket_ids_and_room_broadcast_with_exclusions(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(authenticate=by_id)
    server = running.server
    a, b, c = await connected(running, connect, "a", "b", "c")
    for sid in ("a", "b", "c"):
        server.join_room("game", "r1", sid)
    assert server.get_socket_count_in_room("game", "r1") == 3
    assert server.broadcast_to_room("game", "r1", "move", {"x": 1}, exclude=["b"]) == 2
    assert await a.recv() == '{"event":"move","payload":{"x":1}}'
    assert await c.recv() == '{"event":"move","payload":{"x":1}}'
    assert server.to_socket_ids(["b", "nobody", 7], "hi", None) == 1  # type: ignore[list-item]
    assert await b.recv() == '{"event":"hi","payload":null}'
    assert server.broadcast_to_room("game", "r1", "bye", 0, destroy=True) == 3
    assert server.get_room_count("game") == 0


async def test_w8_rooms_are_left_when_the_socket_goes_away(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(authenticate=by_id)
    server = running.server
    closed = asyncio.Event()
    server.on_system("close", lambda socket, code, reason: closed.set())
    (a,) = await connected(running, connect, "a")
    server.join_room("chat", "r", "a")
    await a.close()
    await asyncio.wait_for(closed.wait(), 5)
    assert server.get_socket("a") is None
    assert server.get_room_ids("chat") == []
    assert server.get_joined_rooms("a") == {}


async def test_w9_duplicate_login_closes_the_old_socket_and_keeps_the_new_mapping(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(authenticate=by_id)
    server = running.server

    # the documented (original) close handler: remove the mapping of the closing socket's id
    @server.on_system("close")
    def on_close(socket: Socket, code: int, reason: str) -> None:
        if socket.id is not None:
            server.remove_user_socket(socket.id)

    (old,) = await connected(running, connect, "u1")
    server.join_room("chat", "r", "u1")
    (new,) = await connected(running, connect, "u1")
    assert await old.closed() == CloseCode.DUPLICATE_LOGIN
    await hello(new)
    current = server.get_socket("u1")
    assert current is not None and current.is_open
    assert server.is_joined_room("u1", "chat", "r")  # the new socket keeps the id's rooms
    assert server.to_socket_id("u1", "still", "here")
    assert await new.recv() == '{"event":"still","payload":"here"}'
    assert server.stats.duplicate_logins == 1


async def test_duplicate_policy_reject_new(start_server: StartServer, connect: Connect) -> None:
    errors: list[BaseException] = []
    running = await start_server(ServerSettings(duplicate_policy=DuplicatePolicy.REJECT_NEW))
    server = running.server

    @server.on_system("connection")
    def accept(socket: Socket) -> None:
        try:
            server.set_user_socket("same", socket)
        except DuplicateSocketError as exc:
            errors.append(exc)

    first = await connect(running.url())
    await hello(first)
    second = await connect(running.url())
    assert await second.closed() == CloseCode.DUPLICATE_LOGIN
    assert len(errors) == 1
    await hello(first)


async def test_w11_clients_cannot_trigger_system_events(
    start_server: StartServer, connect: Connect
) -> None:
    calls: list[str] = []
    running = await start_server(authenticate=by_id)
    server = running.server
    server.on_system("close", lambda *a: calls.append("close"))
    server.on_system("connection", lambda *a: calls.append("connection"))
    (client,) = await connected(running, connect, "victim")
    await client.send('{"event":"close","payload":1,"callbackId":"c"}')
    await client.send('{"event":"connection","payload":{"url":"/?id=13","headers":{}}}')
    await hello(client)
    assert calls == ["connection"]
    assert server.get_socket("victim") is not None
    assert server.stats.unknown_events == 2


async def test_w15_join_room_needs_a_registered_socket(start_server: StartServer) -> None:
    running = await start_server()
    with pytest.raises(UnknownSocketError, match="set_user_socket"):
        running.server.join_room("chat", "r", "ghost")
    with pytest.raises(TypeError):
        running.server.join_room("", "r", "ghost")


async def test_remove_user_socket_with_a_stale_socket_is_a_no_op(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(authenticate=by_id)
    server = running.server
    await connected(running, connect, "u1")
    first = server.get_socket("u1")
    await connected(running, connect, "u1")
    assert first is not None
    assert server.remove_user_socket("u1", first) is False
    assert server.get_socket("u1") is not None


# -- handlers ----------------------------------------------------------------------------------


async def test_w12_handler_failures_and_unknown_events_never_break_the_connection(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server()
    server = running.server

    @server.on("boom")
    def boom(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        raise RuntimeError("handler bug")

    @server.on("aboom")
    async def aboom(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        raise RuntimeError("async handler bug")

    server.on("ok", lambda socket, payload, ack: "fine")
    client = await connect(running.url())
    await client.send('{"event":"boom","payload":1,"callbackId":"a"}')
    await client.send('{"event":"aboom","payload":1,"callbackId":"b"}')
    await client.send('{"event":"nope","payload":1,"callbackId":"c"}')
    await client.send('{"event":"ok","payload":1,"callbackId":"d"}')
    assert await client.recv() == '{"payload":"fine","callbackId":"d"}'
    assert server.stats.handler_errors >= 1 and server.stats.unknown_events == 1


async def test_once_and_off_with_tags(start_server: StartServer, connect: Connect) -> None:
    running = await start_server()
    server = running.server
    server.once("e", lambda s, p, ack: "first")
    server.on("t", lambda s, p, ack: "tagged", tag="grp")
    client = await connect(running.url())
    await client.send('{"event":"e","payload":1,"callbackId":"1"}')
    assert await client.recv() == '{"payload":"first","callbackId":"1"}'
    assert server.off("t", "grp") == 1
    await client.send('{"event":"e","payload":1,"callbackId":"2"}')
    await client.send('{"event":"t","payload":1,"callbackId":"3"}')
    await hello(client)  # neither got an ack
    assert server.stats.unknown_events == 2


async def test_async_handlers_pause_reading_at_the_inflight_limit(
    start_server: StartServer, connect: Connect
) -> None:
    gate = asyncio.Event()
    started: list[int] = []
    running = await start_server(ServerSettings(max_inflight_handlers=2))

    @running.server.on("slow")
    async def slow(socket: Socket, payload: int, ack: Acknowledge | None) -> int:
        started.append(payload)
        await gate.wait()
        return payload

    client = await connect(running.url())
    for i in range(4):
        await client.send(f'{{"event":"slow","payload":{i},"callbackId":"c{i}"}}')
    await client.send("")
    # the heartbeat waits behind the paused reader: nothing arrives while 2 handlers run
    with pytest.raises(TimeoutError):
        await client.recv(timeout=0.3)
    assert started == [0, 1]
    gate.set()
    frames = {await client.recv() for _ in range(5)}
    assert frames == {""} | {f'{{"payload":{i},"callbackId":"c{i}"}}' for i in range(4)}


# -- limits ------------------------------------------------------------------------------------


async def test_w12_oversized_message_closes_with_1009(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(ServerSettings(max_message_size=1024))
    client = await connect(running.url())
    await client.send('{"event":"e","payload":"' + "x" * 2000 + '"}')
    assert await client.closed() == 1009


async def test_w12_slow_consumer_is_closed_with_4003(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(ServerSettings(max_send_buffer=256 * 1024), authenticate=by_id)
    (client,) = await connected(running, connect, "slow")
    socket = running.server.get_socket("slow")
    assert socket is not None
    big = "x" * (512 * 1024)
    for _ in range(64):  # the client reads nothing meanwhile; kernel buffers fill up first
        if not socket.is_open:
            break
        running.server.to_socket_id("slow", "flood", big)
    assert not socket.is_open
    assert running.server.stats.slow_consumer_disconnects == 1
    assert await client.closed(timeout=10) == CloseCode.SLOW_CONSUMER


async def test_w12_rate_limit_closes_with_4004(start_server: StartServer, connect: Connect) -> None:
    running = await start_server(ServerSettings(rate_limit_per_second=1, rate_limit_burst=3))
    client = await connect(running.url())
    for _ in range(10):
        await client.send("")
    assert await client.closed() == CloseCode.RATE_LIMITED
    assert running.server.stats.rate_limited >= 1


async def test_rate_limit_drop_policy_keeps_the_socket(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(
        ServerSettings(
            rate_limit_per_second=0.001, rate_limit_burst=2, rate_limit_policy=RateLimitPolicy.DROP
        )
    )
    client = await connect(running.url())
    for _ in range(5):
        await client.send("")
    assert await client.recv() == ""
    assert await client.recv() == ""
    with pytest.raises(TimeoutError):
        await client.recv(timeout=0.2)
    assert running.server.stats.rate_limited == 3 and not client.ws.closed


async def test_unauthenticated_sockets_are_closed_after_auth_timeout(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(ServerSettings(auth_timeout=0.1), authenticate=by_id)
    anonymous = await connect(running.url())
    (member,) = await connected(running, connect, "m")
    assert await anonymous.closed() == CloseCode.AUTH_TIMEOUT
    await hello(member)
    assert running.server.stats.auth_timeouts == 1


async def test_background_sockets_are_dropped_at_the_next_ping_tick(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(
        ServerSettings(server_ping_interval=0.1, enter_background_close_time=0.05),
        authenticate=by_id,
    )
    server = running.server
    server.on("bg", lambda socket, payload, ack: socket.mark_background())
    (client,) = await connected(running, connect, "phone")
    await client.send('{"event":"bg","payload":1}')
    assert await client.closed() == 1006
    assert server.stats.background_sockets_reaped == 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(st.binary(max_size=200) | st.text(max_size=200), min_size=1, max_size=8))
async def test_fuzzed_frames_never_break_the_server(
    start_server: StartServer, connect: Connect, frames: list[bytes | str]
) -> None:
    running = await shared_server(start_server)
    client = await connect(running.url())
    for frame in frames:
        if isinstance(frame, bytes):
            await client.ws.send_bytes(frame)
        else:
            await client.send(frame)
    await client.send('{"event":"echo","payload":"alive","callbackId":"z"}')
    while True:  # fuzz may include valid frames, heartbeats among them
        text = await client.recv()
        if text == '{"payload":"alive","callbackId":"z"}':
            break
    await client.close()


_shared: dict[int, Running] = {}


async def shared_server(start_server: StartServer) -> Running:
    key = id(start_server)
    if key not in _shared:
        _shared.clear()
        _shared[key] = await start_server(
            setup=lambda s: s.on("echo", lambda socket, payload, ack: payload)
        )
    return _shared[key]


# -- run modes and authentication --------------------------------------------------------------


async def test_refused_before_the_upgrade_with_http_status(
    start_server: StartServer, connect: Connect
) -> None:
    def authenticate(request: UpgradeRequest) -> str:
        if request.headers.get("Authorization") != "Bearer good":
            raise Refuse(401, "bad token")
        if request.cookies.get("banned") == "1":
            raise Refuse(403, "banned")
        return "u1"

    connections: list[Socket] = []
    running = await start_server(
        authenticate=authenticate, setup=lambda s: s.on_system("connection", connections.append)
    )
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(running.url())
    assert info.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(running.url(), headers={"Authorization": "Bearer good", "Cookie": "banned=1"})
    assert info.value.status == 403
    client = await connect(running.url(), headers={"Authorization": "Bearer good"})
    await hello(client)
    assert [s.id for s in connections] == ["u1"]  # refused requests never became sockets
    assert running.server.stats.connections_refused == {"401": 1, "403": 1}


async def test_mounted_on_an_existing_aiohttp_application() -> None:
    server = Server(authenticate=by_id)
    server.on("echo", lambda socket, payload, ack: payload)
    app = web.Application()

    async def health(request: web.Request) -> web.Response:
        return web.Response(text=f"ok {server.connection_count}")

    app.router.add_get("/health", health)
    server.attach(app, "/ws")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{port}/ws?id=a") as ws,
        ):
            await ws.send_str('{"event":"echo","payload":5,"callbackId":"x"}')
            assert (await ws.receive(timeout=5)).data == '{"payload":5,"callbackId":"x"}'
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert await resp.text() == "ok 1"
    finally:
        await runner.cleanup()
    assert not server.is_accepting


async def test_upgrade_from_the_applications_own_route() -> None:
    server = Server()
    server.on("whoami", lambda socket, payload, ack: socket.id)
    app = web.Application()

    async def route(request: web.Request) -> web.StreamResponse:
        user = request.query.get("user")
        if user is None:
            raise web.HTTPForbidden(text="who are you?")
        return await server.handle(request, socket_id=f"user:{user}")

    app.router.add_get("/play", route)
    runner = web.AppRunner(app)
    await runner.setup()
    await server.startup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(f"ws://127.0.0.1:{port}/play")
            assert info.value.status == 403
            async with session.ws_connect(f"ws://127.0.0.1:{port}/play?user=7") as ws:
                await ws.send_str('{"event":"whoami","payload":1,"callbackId":"w"}')
                assert (await ws.receive(timeout=5)).data == '{"payload":"user:7","callbackId":"w"}'
    finally:
        await server.close()
        await runner.cleanup()


async def test_own_port_mode_serves_any_path_and_closes_clients_on_shutdown(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server()
    client = await connect(running.url("/any/path/at/all"))
    await hello(client)
    code, _ = await asyncio.gather(client.closed(), running.server.close())
    assert code == 1001
    with pytest.raises(aiohttp.ClientError):
        await connect(running.url())
