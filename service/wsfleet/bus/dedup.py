"""Drops bus messages seen before: a publish retried on another Redis node may arrive twice.

Every wsfleet message carries ``(boot id, sequence number)`` of its sender. The filter remembers
the last ``window`` sequence numbers of up to ``max_senders`` senders (least recently heard senders
are forgotten first). Messages without the pair (from original nodes) always pass.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class _Seen:
    __slots__ = ("order", "seqs")

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.order: deque[int] = deque()


class DuplicateFilter:
    __slots__ = ("_senders", "dropped", "max_senders", "window")

    def __init__(self, window: int = 8192, max_senders: int = 4096) -> None:
        self.window = window
        self.max_senders = max_senders
        self._senders: OrderedDict[str, _Seen] = OrderedDict()
        self.dropped = 0

    def is_new(self, boot: str, seq: int) -> bool:
        seen = self._senders.get(boot)
        if seen is None:
            seen = self._senders[boot] = _Seen()
            if len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(boot)
        if seq in seen.seqs:
            self.dropped += 1
            return False
        seen.seqs.add(seq)
        seen.order.append(seq)
        if len(seen.order) > self.window:
            seen.seqs.discard(seen.order.popleft())
        return True
