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


def system_name(event: SystemEvent | str) -> str:
    """The table key of a system event; a clear error for a client event name."""
    name = event.value if isinstance(event, SystemEvent) else event
    if name not in SYSTEM_EVENTS:
        raise ValueError(
            f"unknown system event {name!r}; expected one of {sorted(SYSTEM_EVENTS)}. "
            "Client events are registered with on()."
        )
    return name
