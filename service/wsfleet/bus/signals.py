"""Waiting for "something changed" without polling: a :class:`Pulse` and the bus's owned tasks."""

from __future__ import annotations

import asyncio
import logging

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
