"""The connector's only source of time: a :class:`Clock` with ``now()`` and ``call_later()``.

Every delay of the connector (heartbeat ping and pong timeout, ack timeouts, the ``on_pending``
hook, reconnect delays, the timeouts of ``wait_open`` / ``next_event``) is a timer armed on the
injected clock. The default :class:`LoopClock` uses the running event loop;
:class:`wsfleet.client.testing.ManualClock` lets tests move time by hand, so reconnect schedules
and timeouts are tested without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["Clock", "LoopClock", "TimerHandle", "wait_with_timeout"]

T = TypeVar("T")


class TimerHandle(Protocol):
    """A timer armed with :meth:`Clock.call_later`; cancelling a fired timer does nothing."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time in seconds and one-shot timers. Callbacks run in the event loop's thread."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running event loop's clock (``loop.time()`` / ``loop.call_later()``)."""

    __slots__ = ()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


async def wait_with_timeout(clock: Clock, future: asyncio.Future[T], seconds: float | None) -> T:
    """Await ``future``, failing it with ``TimeoutError`` after ``seconds`` of ``clock``.

    ``future`` must belong to the caller (it is completed on timeout). ``None``: no timeout.
    Used instead of ``asyncio.timeout`` so that tests can move the connector's clock.
    """
    if seconds is None:
        return await future

    def expire() -> None:
        if not future.done():
            future.set_exception(TimeoutError(f"timed out after {seconds} s"))

    handle = clock.call_later(seconds, expire)
    try:
        return await future
    finally:
        handle.cancel()
