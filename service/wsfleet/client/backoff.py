"""The reconnect schedule of the original ``WebSocketConnector`` (spec §3.5), as pure code.

Attempt ``repeat`` (1-based, counted since the last successful open) waits:

- ``fast_interval`` for the first ``threshold`` attempts;
- then ``2 ** (repeat - threshold) * fast_interval`` plus a jitter of ``random() * fast_interval``,
  capped at ``max_interval`` and never below ``fast_interval``.

The original computes in whole milliseconds and floors the result; durations here are float
seconds, floored to the millisecond, so the delay table is the same. With the defaults
(3 s / 3 / 120 s): 3, 3, 3, 6-8.999, 12-14.999, 24-26.999, 48-50.999, 96-98.999, then 120 s.

Nothing here sleeps or reads a clock: the connector asks :class:`ReconnectSchedule` for the next
delay and waits for it with its injected clock.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable

__all__ = ["ReconnectSchedule", "reconnect_delay"]


def _floor_ms(seconds: float) -> float:
    # round() first so that 0.1 * 3 (0.30000000000000004) and 0.7 * 1000 (699.9999999999999)
    # floor to the millisecond the original's integer arithmetic gives.
    return math.floor(round(seconds * 1000, 6)) / 1000


def reconnect_delay(
    repeat: int,
    *,
    threshold: int,
    fast_interval: float,
    max_interval: float,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait before reconnect attempt number ``repeat`` (1-based).

    ``random`` returns a float in ``[0, 1)``, like ``Math.random``; pass a stub in tests.
    """
    if repeat < 1:
        raise ValueError(f"repeat is 1-based, got {repeat}")
    if repeat <= threshold:
        return fast_interval
    base = 2.0 ** (repeat - threshold) * fast_interval
    jitter = random() * fast_interval
    return _floor_ms(max(min(base + jitter, max_interval), fast_interval))


class ReconnectSchedule:
    """The attempt counter ``repeat`` and the limit, without any timer.

    ``next_delay()`` counts one more attempt and returns its delay, or ``None`` when
    ``limit`` attempts have been made since the last ``reset()`` (the original then emits
    ``repeat-limit`` and stops). ``reset()`` is called on every successful open and by
    ``reconnect(repeat_reset=True)``. ``undo()`` takes back the last attempt that never ran,
    when a scheduled attempt is replaced by a new ``reconnect()`` call.
    """

    __slots__ = ("_random", "fast_interval", "limit", "max_interval", "repeat", "threshold")

    def __init__(
        self,
        *,
        threshold: int,
        fast_interval: float,
        max_interval: float,
        limit: int | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.threshold = threshold
        self.fast_interval = fast_interval
        self.max_interval = max_interval
        self.limit = limit
        self.repeat = 0
        self._random = random

    def is_exhausted(self) -> bool:
        """True when the limit forbids another attempt."""
        return self.limit is not None and self.limit <= self.repeat

    def next_delay(self) -> float | None:
        """Count the next attempt and return its delay in seconds, or ``None`` at the limit."""
        if self.is_exhausted():
            return None
        self.repeat += 1
        return reconnect_delay(
            self.repeat,
            threshold=self.threshold,
            fast_interval=self.fast_interval,
            max_interval=self.max_interval,
            random=self._random,
        )

    def undo(self) -> None:
        """Take back the last counted attempt (it was cancelled before it ran)."""
        if self.repeat > 0:
            self.repeat -= 1

    def reset(self) -> None:
        self.repeat = 0
