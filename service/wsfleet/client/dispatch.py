"""Calling user code: the two listener tables, event streams, waiters and tracked tasks.

User code never breaks the connector:

- a listener or callback that raises is logged (``wsfleet.client`` logger) and skipped;
- an ``async`` listener or callback runs as a named task tracked here; its failure is logged
  when it ends, and :meth:`Dispatcher.drain` waits for (then cancels) what is left on close.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from wsfleet.client.errors import ReconnectAbortedError
from wsfleet.client.events import SYSTEM_EVENTS
from wsfleet.client.streams import EventStream
from wsfleet.listeners import ListenerTable, Tag

__all__ = ["Dispatcher", "Listener"]

log = logging.getLogger("wsfleet.client")

Listener = Callable[..., object]


class Dispatcher:
    __slots__ = ("_ended", "_streams", "_tasks", "_waiters", "events_dropped", "server", "system")

    def __init__(self) -> None:
        self.system: ListenerTable[Listener] = ListenerTable()
        self.server: ListenerTable[Listener] = ListenerTable()
        self._streams: set[EventStream] = set()
        self._waiters: dict[str, set[asyncio.Future[Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended = False
        self.events_dropped = 0

    # ------------------------------------------------------------------ registration

    def add_system(self, event: str, fn: Listener, *, once: bool, tag: Tag | None) -> None:
        if event not in SYSTEM_EVENTS:
            raise ValueError(
                f"unknown connector event {event!r}: connector events are "
                f"{', '.join(sorted(SYSTEM_EVENTS))}; listen to server-pushed events with on_event"
            )
        self.system.add(event, fn, once=once, tag=tag)

    def add_server(self, event: str, fn: Listener, *, once: bool, tag: Tag | None) -> None:
        self.server.add(event, fn, once=once, tag=tag)

    # ------------------------------------------------------------------ dispatch

    def emit_system(self, event: str, *args: Any) -> None:
        for entry in self.system.take(event) or ():
            self.invoke(entry.fn, *args, what=event)

    def emit_server(self, event: str, payload: Any) -> None:
        for entry in self.server.take(event) or ():
            self.invoke(entry.fn, payload, what=event)
        for stream in list(self._streams):
            if stream.wants(event) and not stream.push(event, payload):
                self.events_dropped += 1
        waiters = self._waiters.pop(event, None)
        for future in waiters or ():
            if not future.done():
                future.set_result(payload)

    def invoke(self, fn: Callable[..., object], *args: Any, what: str = "listener") -> None:
        """Call user code; an awaitable result becomes a tracked task. Never raises."""
        try:
            result = fn(*args)
        except Exception:
            log.exception("%s listener %r raised", what, fn)
            return
        if inspect.isawaitable(result):
            self.spawn(_as_coroutine(result), name=f"wsfleet-client-listener:{what}")

    # ------------------------------------------------------------------ streams and waiters

    def open_stream(self, names: frozenset[str] | None, maxsize: int) -> EventStream:
        stream = EventStream(names, maxsize, self._streams.discard)
        if self._ended:
            stream.end()
        else:
            self._streams.add(stream)
        return stream

    def wait_event(self, event: str) -> asyncio.Future[Any]:
        """A future resolved with the payload of the next pushed ``event``."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._ended:
            future.set_exception(ReconnectAbortedError("the connector is closed"))
        else:
            self._waiters.setdefault(event, set()).add(future)
        return future

    def forget_waiter(self, event: str, future: asyncio.Future[Any]) -> None:
        waiters = self._waiters.get(event)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[event]

    def end(self) -> None:
        """The connector is closed: streams finish, event waiters fail."""
        self._ended = True
        for stream in list(self._streams):
            stream.end()
        self._streams.clear()
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ReconnectAbortedError("the connector is closed"))

    # ------------------------------------------------------------------ tasks

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("task %s failed", task.get_name(), exc_info=error)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for tracked tasks, then cancel and await the rest."""
        current = asyncio.current_task()
        tasks = {t for t in self._tasks if t is not current}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
