"""System events, kept apart from client events: clients can never trigger them."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class SystemEvent(StrEnum):
    """Handler signatures: ``connection(socket)``, ``close(socket, code, reason)``,
    ``error(socket, exc)``, ``pong(socket, data)``, ``message(socket, raw)`` (every data frame,
    after handling), ``client-ping(socket)`` (application heartbeat), ``listening()``,
    ``server-close()``."""

    CONNECTION = "connection"
    CLOSE = "close"
    ERROR = "error"
    PONG = "pong"
    MESSAGE = "message"
    CLIENT_PING = "client-ping"
    LISTENING = "listening"
    SERVER_CLOSE = "server-close"


SYSTEM_EVENTS: Final = frozenset(e.value for e in SystemEvent)
