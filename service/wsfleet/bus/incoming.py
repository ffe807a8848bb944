"""Cross-server requests from other nodes whose listeners run as tasks, bounded.

At most ``limit`` async listeners of requests run at once (a counting semaphore that never
waits); a request beyond it is refused at once, and the node answers it ``busy``: the reply
carries ``"wsf": {"busy": 1}`` (wsfleet callers report :attr:`~wsfleet.bus.rpc.Outcome.BUSY` for
this node) and the payload ``{"error": "busy"}`` (what an original caller sees). The tasks
themselves are owned by their caller's task owner.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

BUSY_PAYLOAD: Final = {"error": "busy"}


class IncomingCalls:
    __slots__ = ("busy", "limit", "running")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.busy = 0
        """Requests refused because ``limit`` listeners were running."""

    def admit(self) -> bool:
        """Whether one more listener may start now (counted as busy when not)."""
        if self.running >= self.limit:
            self.busy += 1
            return False
        return True

    def started(self, task: asyncio.Future[Any]) -> None:
        self.running += 1
        task.add_done_callback(self._ended)

    def _ended(self, _: asyncio.Future[Any]) -> None:
        self.running -= 1


def discard(work: object) -> None:
    """A coroutine that will never run (closed, so Python does not warn it was not awaited)."""
    close = getattr(work, "close", None)
    if callable(close):
        close()
