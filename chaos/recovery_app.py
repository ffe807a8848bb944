"""The app of the rolling-restart scenario: the socket id comes from ``?id=`` and a new socket
joins the ``feed``/``main`` room (a resumed one gets its rooms back from its session)."""

from __future__ import annotations

from typing import Any

from wsfleet.server import Server, UpgradeRequest


async def setup(server: Server) -> None:
    server.set_authenticator(_socket_id)

    @server.on_system("connection")
    def joined(socket: Any) -> None:
        if socket.id is not None:
            server.join_room("feed", "main", socket.id)


def _socket_id(request: UpgradeRequest) -> str | None:
    return request.param("id")
