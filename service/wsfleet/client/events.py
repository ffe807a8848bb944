"""The connector's own (system) events and the argument of ``reconnect``.

System events and server-pushed events live in separate tables: ``on("pong", …)`` listens to the
heartbeat only, and a server event named ``"pong"`` reaches ``on_event("pong", …)`` only (the
original shared one table, so a server could fire the client's system listeners: W11/W17).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["SYSTEM_EVENTS", "ReconnectInfo", "SystemEventName"]

#: Listener arguments: ``open()``, ``close(code, reason)``, ``error(exc)``, ``message(data)``,
#: ``reconnect(info)``, ``repeat-limit(limit)``, ``ping()``, ``pong(latency_ms)``,
#: ``pong-timeout()``, ``recovery(info)`` (with ``recover=True``: after a resume, a
#: :class:`~wsfleet.client.recovery.RecoveryInfo`).
SystemEventName = Literal[
    "open",
    "close",
    "error",
    "message",
    "reconnect",
    "repeat-limit",
    "ping",
    "pong",
    "pong-timeout",
    "recovery",
]

SYSTEM_EVENTS: Final[frozenset[str]] = frozenset(get_args(SystemEventName))


@dataclass(frozen=True, slots=True)
class ReconnectInfo:
    """Argument of the ``reconnect`` event: attempt number and the delay before it."""

    repeat: int
    """Attempt number since the last successful open, from 1."""
    timeout: float
    """Seconds until the attempt (the original reported milliseconds)."""
