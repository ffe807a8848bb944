"""The Python client against the real ``wsfleet.server.Server`` (``start_server`` from the root
conftest): the two halves of the protocol agree."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsfleet.client import Connector, ConnectorState, UpgradeRefusedError
from wsfleet.server import Acknowledge, Refuse, Server, ServerSettings, Socket, UpgradeRequest

BOUND = 5.0


def authenticate(request: UpgradeRequest) -> str:
    token = request.param("token")
    if token != "good":
        raise Refuse(401, "bad token")
    return request.param("id") or "anonymous"


def app(server: Server) -> None:
    @server.on("echo")
    def echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        if ack is not None:
            ack(payload)

    @server.on("whoami")
    def whoami(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        return {"id": socket.id, "params": dict(socket.params), "path": socket.path}

    @server.on("push-me")
    def push_me(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        assert socket.id is not None
        server.to_socket_id(socket.id, "pushed", payload)

    @server.on("kick")
    def kick(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        socket.close(int(payload), "kicked")


async def start(start_server: Any, **settings: Any) -> Any:
    return await start_server(
        ServerSettings(**settings) if settings else None, authenticate=authenticate, setup=app
    )


def client_for(running: Any, **options: Any) -> Connector:
    params = options.pop("custom_params", {"id": "u1", "token": "good"})
    return Connector(
        running.url(),
        custom_params=params,
        fast_reconnect_interval=0.05,
        close_timeout=0.5,
        **options,
    )


async def test_acks_params_and_pushes(start_server) -> None:
    running = await start(start_server)
    async with client_for(running, custom_params={"id": "u1", "token": "good", "n": 5}) as c:
        await c.wait_open(timeout=BOUND)
        assert await c.emit_with_ack("echo", {"a": [1, None]}) == {"a": [1, None]}
        assert await c.emit_with_promise("echo", 7) == {"success": True, "data": 7}
        who = await c.emit_with_ack("whoami", 1)
        assert who == {"id": "u1", "params": {"id": "u1", "token": "good", "n": "5"}, "path": "ws"}
        waiting = asyncio.ensure_future(c.next_event("pushed", timeout=BOUND))
        c.emit("push-me", {"hello": "world"})
        assert await waiting == {"hello": "world"}


async def test_heartbeat_and_protocol_pings(start_server) -> None:
    running = await start(start_server, server_ping_interval=0.05)
    server_pongs: asyncio.Queue[Any] = asyncio.Queue()
    running.server.on_system("pong", lambda socket, data: server_pongs.put_nowait(data))
    async with client_for(running, ping_interval=0.05) as c:
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        c.once("pong", pong.set_result)
        await c.wait_open(timeout=BOUND)
        assert 0.0 <= await asyncio.wait_for(pong, BOUND) < 1000.0
        for _ in range(3):  # the server's protocol pings are answered: the socket stays
            await asyncio.wait_for(server_pongs.get(), BOUND)
        assert c.is_open
        assert running.server.stats.dead_sockets_reaped == 0


async def test_refused_upgrade(start_server) -> None:
    running = await start(start_server)
    c = client_for(running, custom_params={"token": "bad"}, repeat_limit=0)
    errors: asyncio.Queue[BaseException] = asyncio.Queue()
    limit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    c.on("error", errors.put_nowait)
    c.once("repeat-limit", limit.set_result)
    try:
        await c.connect()
        error = await asyncio.wait_for(errors.get(), BOUND)
        assert isinstance(error, UpgradeRefusedError) and error.status == 401
        assert await asyncio.wait_for(limit, BOUND) == 0
    finally:
        await c.aclose()


@pytest.mark.parametrize(("code", "reconnects"), [(4011, False), (4012, False), (1012, True)])
async def test_server_close_codes(start_server, code: int, reconnects: bool) -> None:
    running = await start(start_server)
    async with client_for(running) as c:
        closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        c.once("close", lambda code, reason: closed.set_result((code, reason)))
        await c.wait_open(timeout=BOUND)
        c.emit("kick", code)
        assert await asyncio.wait_for(closed, BOUND) == (code, "kicked")
        if reconnects:
            await c.wait_open(timeout=BOUND)
            assert await c.emit_with_ack("echo", "again") == "again"
        else:
            assert c.state is ConnectorState.STOPPED


async def test_server_shutdown_fails_pending_acks_and_reconnects(start_server) -> None:
    running = await start(start_server)

    @running.server.on("hang")
    async def hang(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        await asyncio.Event().wait()

    async with client_for(running, callback_timeout=30.0) as c:
        await c.wait_open(timeout=BOUND)
        result = asyncio.ensure_future(c.emit_with_promise("hang", 1))
        closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        c.once("close", lambda code, reason: closed.set_result(code))
        reconnect: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        c.once("reconnect", reconnect.set_result)
        await running.server.close()
        assert await asyncio.wait_for(closed, BOUND) == 1001
        assert (await asyncio.wait_for(result, BOUND))["errorCode"] == "WS_CLOSED"
        assert (await asyncio.wait_for(reconnect, BOUND)).repeat == 1
