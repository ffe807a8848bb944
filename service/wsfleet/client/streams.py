"""``EventStream``: server-pushed events as an async iterator, for scripts and tests.

Overflow policy: a stream holds at most ``maxsize`` events. When a new event arrives at a full
stream, the **oldest** waiting event is dropped and counted in ``dropped`` (and in the
connector's ``stats.events_dropped``), so a slow reader sees the most recent events and never
blocks the connection. The stream ends (``StopAsyncIteration``) once the connector is closed and
the remaining events have been read, or when ``close()`` is called.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["EventStream"]


class EventStream:
    """Yields ``(name, payload)`` for each pushed event (of ``names`` only, if given)."""

    __slots__ = ("_buffer", "_ended", "_on_close", "_waiter", "dropped", "maxsize", "names")

    def __init__(
        self,
        names: frozenset[str] | None,
        maxsize: int,
        on_close: Callable[[EventStream], None],
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.names = names
        self.maxsize = maxsize
        self.dropped = 0
        self._buffer: deque[tuple[str, Any]] = deque()
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._buffer)

    def wants(self, name: str) -> bool:
        return not self._ended and (self.names is None or name in self.names)

    def push(self, name: str, payload: Any) -> bool:
        """Add an event; returns False if the oldest one had to be dropped for it."""
        kept_all = True
        if len(self._buffer) >= self.maxsize:
            self._buffer.popleft()
            self.dropped += 1
            kept_all = False
        self._buffer.append((name, payload))
        self._wake()
        return kept_all

    def end(self) -> None:
        """No more events will come; readers finish after draining the buffer."""
        self._ended = True
        self._wake()

    def close(self) -> None:
        """Stop receiving and discard what is buffered."""
        self._buffer.clear()
        if not self._ended:
            self.end()
        self._on_close(self)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        while not self._buffer:
            if self._ended:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
