"""The demo application: what ``wsfleet serve`` runs when no ``--app`` is given.

Contract (also used by the client test suites): ``?token=deny`` is refused with 401 before the
upgrade; any other ``?token=`` must be a token signed with the keys in ``WSFLEET_DEMO_TOKEN_KEYS``
(:mod:`wsfleet.tokens`) and names the socket by its subject, as applications do it (the README
quickstart); else ``?id=`` names the socket — a demo convenience: anyone can claim any id with it —
else a random ``guest-…`` id of 96 bits. ``?name=`` is the display name. Pages of other
origins are refused with 403 unless ``allowed_origins`` says otherwise. Events,
all acked: ``echo``, ``join``/``leave``/``say`` (namespace ``chat``), ``whoami``, ``broadcast``
(pushed to everyone as ``announcement``) and ``close-me`` {code, reason}.

In a fleet, ``join`` answers with the room's members on every node (a cross-server call to all
live nodes, ``demo.members``), and a socket that goes away is announced as ``left`` in its rooms.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Final

from wsfleet import tokens
from wsfleet.server import Acknowledge, Refuse, Server, Socket, UpgradeRequest
from wsfleet.server.origins import SAME_ORIGIN

STATIC_DIR: Final = Path(__file__).with_name("static")
TOKEN_KEYS_ENV: Final = "WSFLEET_DEMO_TOKEN_KEYS"
NAMESPACE: Final = "chat"
_MAX_TEXT: Final = 2000
_MEMBERS_EVENT: Final = "demo.members"
_MEMBERS_TIMEOUT: Final = 1.0

log = logging.getLogger("wsfleet.demo")


def _room(payload: Any) -> str:
    room = payload.get("room") if isinstance(payload, dict) else None
    if not isinstance(room, str) or not room or len(room) > 64:
        raise ValueError("payload needs a 'room' string of 1-64 characters")
    return room


def _name(socket: Socket) -> str:
    name = socket.data.get("name")
    return name if isinstance(name, str) else (socket.id or "?")


def _local_members(server: Server, room: str) -> dict[str, str]:
    """``{socket id: display name}`` of the room's members on this node."""
    members: dict[str, str] = {}
    for socket_id in server.get_room_socket_ids(NAMESPACE, room):
        socket = server.get_socket(socket_id)
        members[socket_id] = _name(socket) if socket is not None else socket_id
    return members


async def _fleet_members(server: Server, room: str) -> dict[str, str]:
    """The room's members on every live node (this one answers directly)."""
    members = _local_members(server, room)
    if server.fleet is None:
        return dict(sorted(members.items()))
    try:
        result = await server.emit_cross_server_async(
            _MEMBERS_EVENT, {"room": room}, mode="all", exclude_self=True, timeout=_MEMBERS_TIMEOUT
        )
    except Exception as exc:  # the bus is down: the local members are better than nothing
        log.debug("room members of other nodes unavailable: %r", exc)
        return members
    for reply in result.payloads.values():
        if isinstance(reply, dict):  # from another node: check the shape
            for socket_id, name in list(reply.items())[:1000]:
                if isinstance(socket_id, str) and isinstance(name, str):
                    members.setdefault(socket_id[:64], name[:40])
    return dict(sorted(members.items()))


def authenticate(request: UpgradeRequest) -> str:
    token = request.param("token")
    if token == "deny":
        raise Refuse(401, "Unauthorized: demo token 'deny' is refused")
    if token:  # the way applications do it: the id is the subject of a verified token
        keys_text = os.environ.get(TOKEN_KEYS_ENV)
        if not keys_text:
            raise Refuse(401, f"Unauthorized: no {TOKEN_KEYS_ENV} to verify tokens with")
        try:
            return tokens.verify(tokens.Keys.parse(keys_text, TOKEN_KEYS_ENV), token).subject
        except (tokens.TokenError, ValueError) as exc:
            raise Refuse(401, f"Unauthorized: {exc}") from None
    socket_id = request.param("id") or f"guest-{secrets.token_urlsafe(12)}"
    if len(socket_id) > 64:
        raise Refuse(400, "id must be at most 64 characters")
    return socket_id


def setup(server: Server) -> None:
    server.set_authenticator(authenticate)
    if not server.settings.allowed_origins:  # the demo page and its socket share one origin
        server.settings = dataclasses.replace(server.settings, allowed_origins=(SAME_ORIGIN,))

    @server.on_system("connection")
    def connected(socket: Socket) -> None:
        name = socket.request.param("name")
        socket.data["name"] = (name or socket.id or "guest")[:40]

    @server.on("echo")
    def echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        if ack is not None:
            ack(payload)

    @server.on("whoami")
    def whoami(socket: Socket, payload: Any, ack: Acknowledge | None) -> dict[str, Any]:
        return {
            "id": socket.id,
            "name": _name(socket),
            "params": dict(socket.params),
            "path": socket.path,
        }

    if server.fleet is not None:

        @server.on_cross_server_event(_MEMBERS_EVENT)
        def members_here(data: dict[str, Any], reply: Any) -> dict[str, str]:
            payload = data.get("payload")
            room = payload.get("room") if isinstance(payload, dict) else None
            if not isinstance(room, str) or not room or len(room) > 64:
                return {}
            return _local_members(server, room)

    @server.on_system("close")
    def gone(socket: Socket, code: int, reason: str) -> None:
        if socket.id is None or server.get_socket(socket.id) not in (None, socket):
            return  # replaced by a newer login with the same id: still here
        for room in server.get_joined_rooms(socket.id, NAMESPACE).get(NAMESPACE, ()):
            server.broadcast_to_room(
                NAMESPACE,
                room,
                "left",
                {"room": room, "id": socket.id, "name": _name(socket)},
                exclude={socket.id},
            )

    @server.on("join")
    async def join(socket: Socket, payload: Any, ack: Acknowledge | None) -> dict[str, Any]:
        room = _room(payload)
        assert socket.id is not None
        server.join_room(NAMESPACE, room, socket.id)
        server.broadcast_to_room(
            NAMESPACE,
            room,
            "joined",
            {"room": room, "id": socket.id, "name": _name(socket)},
            exclude={socket.id},
        )
        members = await _fleet_members(server, room)
        return {"room": room, "members": sorted(members), "names": members}

    @server.on("leave")
    def leave(socket: Socket, payload: Any, ack: Acknowledge | None) -> dict[str, Any]:
        room = _room(payload)
        if socket.id is not None and server.leave_room(NAMESPACE, room, socket.id):
            server.broadcast_to_room(
                NAMESPACE, room, "left", {"room": room, "id": socket.id, "name": _name(socket)}
            )
        return {"room": room}

    @server.on("say")
    def say(socket: Socket, payload: Any, ack: Acknowledge | None) -> dict[str, Any]:
        room = _room(payload)
        text = payload.get("text")
        if not isinstance(text, str):
            raise ValueError("payload needs a 'text' string")
        if socket.id is None or not server.is_joined_room(socket.id, NAMESPACE, room):
            return {"ok": False, "error": "join the room first"}
        message = {
            "room": room,
            "id": socket.id,
            "name": _name(socket),
            "text": text[:_MAX_TEXT],
            "ts": int(time.time() * 1000),
        }
        server.broadcast_to_room(NAMESPACE, room, "said", message)
        return {"ok": True}

    @server.on("broadcast")
    def broadcast(socket: Socket, payload: Any, ack: Acknowledge | None) -> dict[str, Any]:
        server.broadcast("announcement", payload)
        return {"ok": True}

    @server.on("close-me")
    def close_me(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        code = payload.get("code", 4010) if isinstance(payload, dict) else 4010
        reason = payload.get("reason", "") if isinstance(payload, dict) else ""
        if not isinstance(code, int) or not 4000 <= code <= 4999:
            code = 4010
        if ack is not None:
            ack({"ok": True})
        socket.close(code, str(reason)[:100])
