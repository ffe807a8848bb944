"""The node's one phase and its one readiness rule, on a real port."""

from __future__ import annotations

from aiohttp import ClientSession

from wsfleet.ops.internal_http import internal_http, readiness
from wsfleet.server import Server, ServerSettings
from wsfleet.server.state import Phase


async def test_not_ready_before_the_websocket_port_is_bound() -> None:
    server = Server(ServerSettings(close_timeout=0.5))
    seen: list[tuple[Phase, bool, list[str]]] = []

    @server.on_system("listening")
    def listening() -> None:  # runs in startup(), before the site binds its port
        seen.append((server.lifecycle.phase, server.is_ready, readiness(server)))

    async with internal_http(server, "127.0.0.1", 0) as http, ClientSession() as session:
        async with session.get(http.url + "/readyz") as response:
            assert response.status == 503
            body = await response.json()
        assert body["reasons"] == ["starting: the WebSocket port is not listening yet"]
        port = await server.start("127.0.0.1", 0)
        assert seen == [
            (Phase.STARTING, False, ["starting: the WebSocket port is not listening yet"])
        ]
        assert server.lifecycle.phase is Phase.READY and server.is_ready and port
        async with session.get(http.url + "/readyz") as response:
            assert response.status == 200
        await server.drain(0.1)
        assert server.lifecycle.phase is Phase.CLOSED
        assert server.is_draining and not server.is_accepting and not server.is_ready
        async with session.get(http.url + "/readyz") as response:
            assert response.status == 503
            assert (await response.json())["reasons"] == ["draining"]


async def test_a_closed_node_starts_again() -> None:
    server = Server(ServerSettings(close_timeout=0.5))
    await server.start("127.0.0.1", 0)
    await server.close()
    assert server.lifecycle.phase is Phase.CLOSED and server.is_closing
    await server.start("127.0.0.1", 0)
    assert server.lifecycle.phase is Phase.READY and server.is_ready
    await server.close()
