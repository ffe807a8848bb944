"""Time for the parts that must be testable without waiting: a :class:`Clock` with ``now()``
and ``call_later()``.

Every delay of the client connector and of the cross-server bus (heartbeats, ack timeouts,
reconnect delays, the bus's reorder guard, admission deadlines, probe and expiry timers) is a
timer armed on an injected clock. :class:`LoopClock` uses the running event loop;
:class:`ManualClock` only moves when a test calls ``advance()``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = [
    "Clock",
    "LoopClock",
    "ManualClock",
    "ManualTimer",
    "TimerHandle",
    "sleep",
    "wait_with_timeout",
]


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


async def sleep(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` of ``clock`` (a timer on the clock, so a :class:`ManualClock` drives it)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    handle = clock.call_later(seconds, wake)
    try:
        await future
    finally:
        handle.cancel()


class ManualTimer:
    """A timer of a :class:`ManualClock`."""

    __slots__ = ("_callback", "cancelled", "deadline", "delay", "fired")

    def __init__(self, deadline: float, delay: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.delay = delay
        self._callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True

    def is_active(self) -> bool:
        return not (self.cancelled or self.fired)

    def _fire(self) -> None:
        self.fired = True
        self._callback()


class ManualClock:
    """A clock that only moves when told to. Not thread-safe (neither is the connector)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        delay = max(0.0, delay)
        timer = ManualTimer(self._now + delay, delay, callback)
        heapq.heappush(self._heap, (timer.deadline, next(self._seq), timer))
        return timer

    def active_timers(self) -> list[ManualTimer]:
        """Timers not yet fired or cancelled, soonest first."""
        return [t for _, _, t in sorted(self._heap) if t.is_active()]

    def next_deadline(self) -> float | None:
        self._discard_cancelled()
        return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, firing due timers in order; returns how many fired.

        Callbacks run synchronously; coroutines they wake run when the caller next awaits.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        fired = 0
        while True:
            self._discard_cancelled()
            if not self._heap or self._heap[0][0] > target:
                break
            deadline, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, deadline)
            timer._fire()
            fired += 1
        self._now = target
        return fired

    def advance_to_next(self) -> float:
        """Move to the next deadline and fire what is due there; returns the step taken."""
        deadline = self.next_deadline()
        if deadline is None:
            raise LookupError("no timer is armed")
        step = deadline - self._now
        self.advance(step)
        return step

    def _discard_cancelled(self) -> None:
        while self._heap and not self._heap[0][2].is_active():
            heapq.heappop(self._heap)
