"""The one state of a node's lifecycle, shared read-only with the parts that must know it."""

from __future__ import annotations

import enum
from typing import Final

from wsfleet.protocol.codes import CloseCode

#: How a drain closes its clients (and any connection admitted once it began).
DRAIN_CLOSE: Final = (int(CloseCode.SERVICE_RESTART), "server restarting: reconnect")


class Phase(enum.Enum):
    """``STARTING`` → ``READY`` → ``DRAINING`` → ``CLOSED`` (``start`` again → ``STARTING``)."""

    STARTING = "starting"
    """Built or starting: upgrades are admitted (a node used through ``handle()`` may never
    start), but the node is not ready for a load balancer yet."""
    READY = "ready"
    """Started and, when it serves its own port, bound to it."""
    DRAINING = "draining"
    """Refusing upgrades, closing its clients with 1012."""
    CLOSED = "closed"
    """``close()`` began: everything is stopping or stopped."""


class NodeState:
    """The phase, and how a connection admitted just as the node stopped accepting is closed
    (``late_close``: 1012 once a drain began, so it reconnects elsewhere, even after the
    drain turned into the close)."""

    __slots__ = ("late_close", "phase")

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.late_close: tuple[int, str] | None = None

    @property
    def accepting(self) -> bool:
        return self.phase is Phase.STARTING or self.phase is Phase.READY

    @property
    def draining(self) -> bool:
        """A drain began (and the close it ends with may be under way)."""
        return self.phase is Phase.DRAINING or self.late_close == DRAIN_CLOSE

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED
