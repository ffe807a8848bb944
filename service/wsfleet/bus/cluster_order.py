"""Per-slot order of a cluster link's commands across redirects, failovers and slot moves.

Redis keeps the order of the commands of one connection. A cluster link sends the commands of
one hash slot on the connection to the master that owns the slot, so their order holds until a
command comes back unanswered - ``MOVED``, ``ASK``, ``CLUSTERDOWN``, ``TRYAGAIN`` or a lost
connection - and must be sent again, perhaps to another master. :class:`SlotOrder` keeps the
order of one slot's commands through that:

- Every command gets a sequence number when it is submitted.
- A command that comes back is **held**: put back among the slot's held commands by its
  sequence number, so commands handed back in separate groups (the replies of one connection,
  then the queue of another) still line up in submission order.
- While a slot holds anything, every later command for it is held behind.
- A slot's commands go to one master at a time: a command whose target differs from where the
  slot's unanswered commands went (the slot map changed) is held until those are answered.
- Held commands go out again only while the gate is :attr:`open` (the link opens it once the
  bus admitted it again: the slot map was refreshed and every node listens on the new shards),
  once the slot has nothing unanswered, oldest first, and only as many as go to one master.
- A slot that held something is **on probation** until what it sent again is answered: later
  commands wait for that instead of being pipelined behind, so that a ``CLUSTERDOWN`` on the
  first resent command cannot be overtaken by a later one that the shard accepts a moment after.
- An ``ASK`` redirect resends that one command, preceded by ``ASKING``, to the importing node
  (the slot map is not changed); the commands after it wait for its answer.

The logic is pure: the link supplies where a slot's commands go now (``target``) and how to send
one (``send``, False when that master has no connected publisher now).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from wsfleet.bus.broker import Command, command_size

Address = tuple[str, int]

SENT: Final = "sent"
HELD: Final = "held"
REFUSED: Final = "refused"


@dataclass(slots=True, eq=False)
class Entry:
    """One submitted command and what the order knows of it."""

    seq: int
    slot: int
    command: Command
    since: float
    """Clock time it was submitted (held commands expire by it)."""
    size: int = 0
    """Bytes of its arguments, counted when it is held."""
    ask: Address | None = None
    """The importing node an ``ASK`` named: the next send goes there, after ``ASKING``."""


Target = Callable[[int], Address | None]
Send = Callable[[Entry, Address], bool]


class SlotOrder:
    """The held commands and unanswered counts of every slot (see the module docstring)."""

    __slots__ = (
        "_held",
        "_inflight",
        "_probation",
        "_send",
        "_sent_to",
        "_seq",
        "_target",
        "held_bytes",
        "held_count",
        "inflight_count",
        "max_bytes",
        "open",
    )

    def __init__(self, target: Target, send: Send, *, max_bytes: int) -> None:
        self._target = target
        self._send = send
        self.max_bytes = max_bytes
        """Bytes of held commands; beyond it a new command is refused (the caller hands it
        back to the bus: policy ``hand-back``)."""
        self._seq = itertools.count()
        self._held: dict[int, list[Entry]] = {}
        self._inflight: dict[int, int] = {}
        self._sent_to: dict[int, Address] = {}
        self._probation: set[int] = set()
        self.held_bytes = 0
        self.held_count = 0
        self.inflight_count = 0
        self.open = False

    # -- state -------------------------------------------------------------------------------

    def held(self, slot: int) -> list[Entry]:
        """The held commands of ``slot``, in submission order (a copy)."""
        return list(self._held.get(slot, ()))

    def inflight(self, slot: int) -> int:
        return self._inflight.get(slot, 0)

    @property
    def held_slots(self) -> list[int]:
        return list(self._held)

    # -- commands ----------------------------------------------------------------------------

    def entry(self, command: Command, slot: int, now: float) -> Entry:
        """A new entry for ``command`` (numbered, not submitted: pinned commands skip the order
        but keep their place among the others when the link hands everything back)."""
        return Entry(next(self._seq), slot, command, now)

    def submit(self, command: Command, slot: int, now: float) -> str:
        """Send ``command`` now, or hold it behind what its slot holds or waits for.
        :data:`REFUSED` when holding it would pass :attr:`max_bytes`."""
        entry = Entry(next(self._seq), slot, command, now)
        if (
            self.open
            and slot not in self._held
            and (slot not in self._probation or not self._inflight.get(slot))
            and self._try_send(entry)
        ):
            return SENT
        entry.size = command_size(command)
        if self.held_bytes + entry.size > self.max_bytes and self.held_count:
            return REFUSED
        self._hold(entry)
        return HELD

    def answered(self, entry: Entry) -> None:
        """``entry`` got its reply (a result or an error that is not a redirect)."""
        slot = entry.slot
        if self._done(entry) == 0:
            if slot in self._held:
                self._release(slot)
            else:
                self._probation.discard(slot)

    def back(self, entry: Entry, ask: Address | None = None) -> None:
        """``entry`` came back unanswered: hold it in its place (by sequence number). With
        ``ask``, its next send goes to that node, after ``ASKING``."""
        self._done(entry)
        entry.ask = ask
        self._hold(entry)
        if not self._inflight.get(entry.slot):
            self._release(entry.slot)

    def set_open(self, open_: bool) -> None:
        """Open or close the gate; opening sends what every slot holds (slots whose oldest
        command is oldest first)."""
        self.open = open_
        if open_:
            self.release_all()

    def release_all(self) -> None:
        """Send what can go now (after a publisher connected or the slot map changed)."""
        if not self.open:
            return
        for slot in sorted(self._held, key=lambda s: self._held[s][0].seq):
            if not self._inflight.get(slot):
                self._release(slot)

    def expire(self, now: float, max_age: float) -> list[Entry]:
        """Remove and return the held commands submitted more than ``max_age`` ago."""
        out: list[Entry] = []
        for slot in list(self._held):
            entries = self._held[slot]
            kept = [e for e in entries if now - e.since <= max_age]
            if len(kept) != len(entries):
                out.extend(e for e in entries if now - e.since > max_age)
                self._set_held(slot, kept)
        out.sort(key=lambda e: e.seq)
        return out

    def take_held(self) -> list[Entry]:
        """Remove and return every held command, in submission order."""
        out = sorted((e for entries in self._held.values() for e in entries), key=lambda e: e.seq)
        self._held.clear()
        self._probation.clear()
        self.held_bytes = 0
        self.held_count = 0
        return out

    # -- inside ------------------------------------------------------------------------------

    def _try_send(self, entry: Entry) -> bool:
        slot = entry.slot
        address = entry.ask or self._target(slot)
        if address is None:
            return False
        if self._inflight.get(slot) and self._sent_to.get(slot) != address:
            return False  # the slot's unanswered commands went elsewhere: wait for them
        if not self._send(entry, address):
            return False
        entry.ask = None
        self._inflight[slot] = self._inflight.get(slot, 0) + 1
        self._sent_to[slot] = address
        self.inflight_count += 1
        return True

    def _done(self, entry: Entry) -> int:
        """Count ``entry`` as no longer unanswered; the slot's unanswered count left."""
        slot = entry.slot
        left = self._inflight.get(slot, 0) - 1
        if left > 0:
            self._inflight[slot] = left
        else:
            left = 0
            self._inflight.pop(slot, None)
            self._sent_to.pop(slot, None)
        self.inflight_count = max(self.inflight_count - 1, 0)
        return left

    def _hold(self, entry: Entry) -> None:
        if not entry.size:
            entry.size = command_size(entry.command)
        entries = self._held.setdefault(entry.slot, [])
        if not entries or entries[-1].seq < entry.seq:
            entries.append(entry)
        else:
            entries.insert(bisect.bisect_left([e.seq for e in entries], entry.seq), entry)
        self.held_bytes += entry.size
        self.held_count += 1
        self._probation.add(entry.slot)

    def _release(self, slot: int) -> None:
        """Send the slot's oldest held commands, as many as go to one master, if the gate is
        open and nothing of the slot is unanswered."""
        if not self.open or self._inflight.get(slot):
            return
        entries = self._held.get(slot)
        if not entries:
            return
        sent = 0
        first: Address | None = None
        for entry in entries:
            address = entry.ask or self._target(slot)
            if first is not None and (address != first or entry.ask is not None):
                break  # another master (or an ASK): after these are answered
            if not self._try_send(entry):
                break
            first = address
            sent += 1
            if address != self._target(slot):
                break  # an ASK: that one alone
        if sent:
            self._set_held(slot, entries[sent:])

    def _set_held(self, slot: int, entries: list[Entry]) -> None:
        before = self._held.get(slot, [])
        self.held_bytes -= sum(e.size for e in before) - sum(e.size for e in entries)
        self.held_count -= len(before) - len(entries)
        if entries:
            self._held[slot] = entries
        else:
            self._held.pop(slot, None)
