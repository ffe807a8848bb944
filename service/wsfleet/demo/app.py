"""The demo application: what ``wsfleet serve`` runs when no ``--app`` is given.

Contract (also used by the client test suites): ``?token=deny`` is refused with 401 before the
upgrade; any other ``?token=`` must be a token signed with the keys in ``WSFLEET_DEMO_TOKEN_KEYS``
(:mod:`wsfleet.tokens`) and names the socket by its subject, as applications do it (the README
quickstart); else ``?id=`` names the socket — a demo convenience: anyone can claim any id with it —
else a random ``guest-…`` id of 96 bits. ``?name=`` is the display name. Pages of other
origins are refused with 403 unless ``allowed_origins`` says otherwise. Events,
all acked: ``echo``, ``join``/``leave``/``say`` (namespace ``chat``), ``whoami``, ``broadcast``
(pushed to everyone as ``announcement``) and ``close-me`` {code, reason}.
"""

from __future__ import annotations

import dataclasses
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


def _room(payload: Any) -> str:
    room = payload.get("room") if isinstance(payload, dict) else None
    if not isinstance(room, str) or not room or len(room) > 64:
        raise ValueError("payload needs a 'room' string of 1-64 characters")
    return room


def _name(socket: Socket) -> str:
    name = socket.data.get("name")
    return name if isinstance(name, str) else (socket.id or "?")


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

    @server.on("join")
    def join(socket: Socket, payload: Any, ack: Acknowledge | None) -> dict[str, Any]:
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
        members = sorted(server.get_room_socket_ids(NAMESPACE, room))
        return {"room": room, "members": members}

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
