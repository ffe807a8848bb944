"""Drops bus messages seen before: a publish retried on another Redis node may arrive twice.

Every wsfleet message carries ``(boot id, sequence number)`` of its sender. The filter runs only
after a message was authenticated and decoded, and remembers per sender boot the last ``window``
entries it accepted (up to ``max_senders`` boots, the least recently heard forgotten first).

- **Verified** messages (a signed bus): the entry is the sequence number. A number older than
  everything the window still holds (at or below the highest one it forgot) is refused as a
  replay: nobody can bring back an old message once it left the window. Only the genuine sender
  moves its own window, one message at a time.
- **Unverified** messages (a bus without a key): the entry is the sequence number *and* a keyed
  digest of the exact bytes (a retried publish sends the same bytes). A forged message that
  reuses a sender's next numbers has other bytes, so it never suppresses the genuine one; there
  is no replay floor (a forger could push it forward).

Messages without the pair (from original nodes) always pass.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from enum import Enum


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    REPLAY = "replay"


class _Seen:
    __slots__ = ("floor", "order", "seen")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.order: deque[int] = deque()
        self.floor = 0


class DuplicateFilter:
    __slots__ = ("_senders", "dropped", "max_senders", "window")

    def __init__(self, window: int = 8192, max_senders: int = 4096) -> None:
        self.window = window
        self.max_senders = max_senders
        self._senders: OrderedDict[str, _Seen] = OrderedDict()
        self.dropped = 0

    def _sender(self, boot: str) -> _Seen:
        seen = self._senders.get(boot)
        if seen is None:
            seen = self._senders[boot] = _Seen()
            if len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(boot)
        return seen

    def admit(self, wsf: object, data: bytes, *, verified: bool) -> Verdict:
        """The verdict on a decoded message's ``wsf`` field (the fields of ``meta_of()`` that
        matter here, without building a ``Meta``)."""
        if type(wsf) is not dict:
            return Verdict.NEW
        boot, seq = wsf.get("b"), wsf.get("s")
        if type(boot) is not str or type(seq) is not int:
            return Verdict.NEW
        if verified:
            return self.check(boot, seq)
        return Verdict.NEW if self.is_new(boot, seq, hash(data)) else Verdict.DUPLICATE

    def check(self, boot: str, seq: int) -> Verdict:
        """A verified message: new, a duplicate, or a replay from before the window."""
        seen = self._sender(boot)
        if seq in seen.seen:
            self.dropped += 1
            return Verdict.DUPLICATE
        if seq <= seen.floor:
            return Verdict.REPLAY
        self._remember(seen, seq, floor=True)
        return Verdict.NEW

    def is_new(self, boot: str, seq: int, digest: int = 0) -> bool:
        """An unverified message: ``digest`` of its bytes (``hash(data)``) is part of the entry."""
        seen = self._sender(boot)
        entry = (digest << 64) ^ seq
        if entry in seen.seen:
            self.dropped += 1
            return False
        self._remember(seen, entry, floor=False)
        return True

    def _remember(self, seen: _Seen, entry: int, *, floor: bool) -> None:
        seen.seen.add(entry)
        seen.order.append(entry)
        if len(seen.order) > self.window:
            old = seen.order.popleft()
            seen.seen.discard(old)
            if floor and old > seen.floor:
                seen.floor = old
