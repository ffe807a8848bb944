"""Waiting for "something changed" without polling: a :class:`Pulse` and the bus's owned tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from wsfleet.clock import Clock, wait_with_timeout
from wsfleet.protocol.errors import WsfleetError

log = logging.getLogger("wsfleet.bus")


class ClosingError(WsfleetError):
    """The component is closing and takes no new work."""


class Pulse:
    """Waiters wake on the next :meth:`fire` (or when their timeout on the clock passes) and
    re-check their own condition. Firing with no waiter costs one truth test."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def fire(self, *_: object) -> None:
        """Wake every waiter (arguments are ignored: it serves directly as a callback)."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    async def wait(self, clock: Clock, timeout: float) -> None:
        """Until the next :meth:`fire` or ``timeout`` seconds of ``clock``; never raises
        ``TimeoutError`` (the caller checks its condition and its deadline)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await wait_with_timeout(clock, future, max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            if future in self._waiters:
                self._waiters.remove(future)


class TaskSet:
    """Tasks a component owns: strong references, cancelled and awaited by :meth:`aclose`, and
    no new task once closing."""

    __slots__ = ("_tasks", "closing", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        if self.closing:
            coro.close()
            raise ClosingError(f"{self.name} is closing")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def reopen(self) -> None:
        self.closing = False

    async def aclose(self) -> None:
        self.closing = True
        while self._tasks:
            tasks = list(self._tasks)
            current = asyncio.current_task()
            for task in tasks:
                if task is not current:
                    task.cancel()
            await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
            self._tasks.difference_update(tasks)
