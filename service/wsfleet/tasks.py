"""Owned background work: a set of tasks with strong references and one way to stop them.

Every component that starts tasks holds a :class:`TaskOwner`. A task's failure is logged when it
happens (not when someone finally looks); :meth:`TaskOwner.aclose` refuses new work, cancels what
runs and awaits it, so nothing outlives its owner and the loop never destroys a pending task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger("wsfleet.tasks")


class OwnerClosedError(RuntimeError):
    """New work was offered to a :class:`TaskOwner` that is closing."""


class TaskOwner:
    """Tasks started on behalf of one component (``name`` says which, in logs)."""

    __slots__ = ("_closing", "_tasks", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closing(self) -> bool:
        return self._closing

    def spawn(self, work: Awaitable[Any], name: str) -> asyncio.Future[Any] | None:
        """Run ``work`` as an owned task; returns it, or None (and discards ``work``) when the
        owner is closing."""
        if self._closing:
            _discard(work)
            log.debug("%s is closing: %s not started", self.name, name)
            return None
        task = asyncio.ensure_future(work)
        if isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as an owned task; raises :class:`OwnerClosedError` (and closes ``coro``)
        when the owner is closing, for callers that must know it was refused."""
        if self._closing:
            coro.close()
            raise OwnerClosedError(f"{self.name} is closing: {name} not started")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error("%s: task %s failed", self.name, name, exc_info=exc)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the running tasks to end on their own; True when
        none is left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        return not self._tasks

    def reopen(self) -> None:
        """Accept work again after :meth:`aclose` (a node started again)."""
        self._closing = False

    async def aclose(self) -> None:
        """Refuse new work, cancel every task and wait until all of them ended."""
        self._closing = True
        current = asyncio.current_task()
        if current is not None:
            self._tasks.discard(current)  # an owned task that closes its owner: not waited for
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)


def _discard(work: Awaitable[Any]) -> None:
    if isinstance(work, Coroutine):
        work.close()  # never awaited: close it so Python does not warn
    elif isinstance(work, asyncio.Future):
        work.cancel()
