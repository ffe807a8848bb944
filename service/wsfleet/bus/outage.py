"""The outage buffer: publishes wait here, in order, while no Redis node is usable.

Bounded by count, by bytes and by age. Overflow policy :data:`REFUSE_NEW`: the *new* publish is
refused (its caller gets :class:`BusUnavailableError` at once) so that what is buffered keeps its
order; entries older than ``max_age`` are expired with the same error. Both are counted.

While the bus moves routing keys between Redis nodes (one returns, is hot-added or removed) it
briefly *holds* new publishes here too, so they cannot overtake older ones still in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

T = TypeVar("T")

REFUSE_NEW: Final = "refuse-new"
"""The overflow policy: a publish that would exceed a bound is refused, what is kept stays."""


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T
    since: float
    size: int


class OutageBuffer(Generic[T]):
    __slots__ = (
        "_entries",
        "_size_of",
        "bytes",
        "expired",
        "max_age",
        "max_bytes",
        "max_items",
        "refused",
    )

    policy: Final = REFUSE_NEW

    def __init__(
        self,
        max_items: int,
        max_age: float,
        max_bytes: int = 64 * 1024 * 1024,
        size_of: Callable[[T], int] = lambda _: 0,
    ) -> None:
        self.max_items = max_items
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: deque[_Entry[T]] = deque()
        self.bytes = 0
        """Bytes held now (the payload sizes of the buffered commands)."""
        self.refused = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, item: T, now: float) -> bool:
        """Keep ``item``; False (and counted) when that would exceed the count or byte bound."""
        size = self._size_of(item)
        if len(self._entries) >= self.max_items or self.bytes + size > self.max_bytes:
            self.refused += 1
            return False
        self._entries.append(_Entry(item, now, size))
        self.bytes += size
        return True

    def requeue_front(self, items: list[T], now: float) -> None:
        """Put ``items`` (in their order) before everything kept: publishes that already failed
        on a Redis node are older than anything buffered since. Never refused: they were
        accepted once already (they held bytes on a link's queue or in flight until now)."""
        entries = [_Entry(item, now, self._size_of(item)) for item in items]
        self.bytes += sum(e.size for e in entries)
        self._entries.extendleft(reversed(entries))

    def oldest(self) -> float | None:
        """When the oldest entry was kept (None when empty)."""
        return self._entries[0].since if self._entries else None

    def expire(self, now: float, on_expired: Callable[[T], None]) -> int:
        count = 0
        entries = self._entries
        while entries and now - entries[0].since > self.max_age:
            entry = entries.popleft()
            self.bytes -= entry.size
            on_expired(entry.item)
            count += 1
        self.expired += count
        return count

    def take(self, max_bytes: int) -> list[T]:
        """The oldest entries up to ``max_bytes`` (at least one), removed, in order."""
        entries = self._entries
        out: list[T] = []
        taken = 0
        while entries and (not out or taken + entries[0].size <= max_bytes):
            entry = entries.popleft()
            taken += entry.size
            out.append(entry.item)
        self.bytes -= taken
        return out

    def drain(self) -> list[T]:
        items = [e.item for e in self._entries]
        self._entries.clear()
        self.bytes = 0
        return items
