"""``ConnectorState`` (where the connector is in its life) and ``ConnectorStats`` (counters)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ConnectorState", "ConnectorStats"]


class ConnectorState(enum.StrEnum):
    NEW = "new"
    """``connect()`` was not called yet."""
    CONNECTING = "connecting"
    """An attempt to open the WebSocket is in progress."""
    OPEN = "open"
    """The WebSocket is open: emits are sent."""
    DISCONNECTED = "disconnected"
    """The connection just ended; the connector is deciding whether to reconnect."""
    WAITING = "waiting"
    """A reconnect attempt is scheduled (see the ``reconnect`` event)."""
    STOPPED = "stopped"
    """Not reconnecting (terminal close code, policy, or ``repeat_limit``) until ``reconnect()``."""
    CLOSED = "closed"
    """``manual_close()`` / ``aclose()`` was called. Final."""


@dataclass(slots=True)
class ConnectorStats:
    """Counters since the connector was created. Read them; do not write."""

    opens: int = 0
    """Connections opened."""
    connect_failures: int = 0
    """Connection attempts that failed (each also fired ``error``)."""
    frames_received: int = 0
    """Text frames received, heartbeat replies included."""
    malformed_frames: int = 0
    """Text frames that were not valid JSON frames of the protocol (ignored, logged at debug)."""
    binary_frames: int = 0
    """Binary frames received (the protocol uses text frames only; they are ignored)."""
    unknown_acks: int = 0
    """Acks for no pending call: late (after a timeout), duplicated, or unknown ids."""
    events_dropped: int = 0
    """Pushed events dropped from full ``events()`` streams (oldest first)."""
