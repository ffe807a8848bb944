"""The outage buffer: publishes wait here, in order, while no Redis node is usable.

Bounded by count and by age. Overflow policy: the *new* publish is refused (its caller gets
:class:`BusUnavailableError` at once) so that what is buffered keeps its order; entries older than
``max_age`` are expired with the same error. Both are counted.

While the bus moves routing keys between Redis nodes (one returns, is hot-added or removed) it
briefly *holds* new publishes here too, so they cannot overtake older ones still in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T
    since: float


class OutageBuffer(Generic[T]):
    __slots__ = ("_entries", "expired", "max_age", "max_items", "refused")

    def __init__(self, max_items: int, max_age: float) -> None:
        self.max_items = max_items
        self.max_age = max_age
        self._entries: deque[_Entry[T]] = deque()
        self.refused = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, item: T, now: float) -> bool:
        """Keep ``item``; False (and counted) when the buffer is full."""
        if len(self._entries) >= self.max_items:
            self.refused += 1
            return False
        self._entries.append(_Entry(item, now))
        return True

    def requeue_front(self, items: list[T], now: float) -> None:
        """Put ``items`` (in their order) before everything kept: publishes that already failed
        on a Redis node are older than anything buffered since. Never refused: they were
        accepted once already."""
        self._entries.extendleft(_Entry(item, now) for item in reversed(items))

    def oldest(self) -> float | None:
        """When the oldest entry was kept (None when empty)."""
        return self._entries[0].since if self._entries else None

    def expire(self, now: float, on_expired: Callable[[T], None]) -> int:
        count = 0
        entries = self._entries
        while entries and now - entries[0].since > self.max_age:
            on_expired(entries.popleft().item)
            count += 1
        self.expired += count
        return count

    def drain(self) -> list[T]:
        items = [e.item for e in self._entries]
        self._entries.clear()
        return items
