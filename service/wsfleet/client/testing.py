"""Test helpers for code that uses the client: a clock you move by hand.

``ManualClock`` implements :class:`wsfleet.client.clock.Clock`. Nothing happens until
``advance()`` is called; it then runs every timer that falls due, in deadline order (timers armed
by those callbacks included), and returns. Pass it as ``Connector(..., clock=clock)``::

    clock = ManualClock()
    connector = Connector(url, clock=clock, callback_timeout=5.0)
    ...
    clock.advance(5.0)   # every ack still pending now fails with CALLBACK_TIMEOUT
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["ManualClock", "ManualTimer"]


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
