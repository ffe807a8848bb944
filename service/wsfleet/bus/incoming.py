"""Cross-server requests from other nodes whose listeners run as tasks, bounded.

At most ``limit`` async listeners of requests run at once (a counting semaphore that never
waits); a request beyond it is refused at once, and the node answers it ``busy``: the reply
carries ``"wsf": {"busy": 1}`` (wsfleet callers report :attr:`~wsfleet.bus.rpc.Outcome.BUSY` for
this node) and the payload ``{"error": "busy"}`` (what an original caller sees). Every task is
owned: cancelled and awaited by :meth:`IncomingCalls.aclose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

BUSY_PAYLOAD: Final = {"error": "busy"}


class IncomingCalls:
    __slots__ = ("_tasks", "busy", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Future[Any]] = set()
        self.busy = 0
        """Requests refused because ``limit`` listeners were running."""

    @property
    def running(self) -> int:
        return len(self._tasks)

    def admit(self) -> bool:
        """Whether one more listener may start now (counted as busy when not)."""
        if len(self._tasks) >= self.limit:
            self.busy += 1
            return False
        return True

    def run(self, awaitable: Awaitable[Any], done: Callable[[asyncio.Future[Any]], None]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(done)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
