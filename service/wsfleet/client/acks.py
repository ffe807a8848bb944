"""Pending acks: callback ids, their timeout timers and the ``on_pending`` hook.

Each ack-ed emit registers one entry, settled exactly once, by the first of:

- the server's ack (``resolve``),
- its timeout (``AckTimeoutError``),
- the end of the connection (``fail_all`` with ``ConnectionClosedError``): a reply can never
  arrive on a later connection, so the original's wait for the timeout is pointless (W17),
- the caller giving up (``discard``, e.g. a cancelled ``emit_with_ack``), which settles nothing.

Both timers are cancelled when the entry is settled. The registry is bounded by ``limit``.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wsfleet.client.clock import Clock, TimerHandle
from wsfleet.client.errors import AckTimeoutError, ConnectorError, TooManyPendingAcksError

__all__ = ["PendingAcks", "Settle", "format_callback_id", "to_base36"]

#: Receives ``(None, payload)`` on success or ``(error, None)``. Called once, never raises out.
Settle = Callable[[ConnectorError | None, Any], None]

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(number: int) -> str:
    """``number.toString(36)`` for a non-negative integer."""
    if number < 0:
        raise ValueError("only non-negative numbers")
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
        if not number:
            return out


def format_callback_id(epoch_ms: int, rand: str, counter: int) -> str:
    """The original client's id format (spec §2.2): ``<ms base36>-<4 random>-<counter base36>``."""
    return f"{to_base36(epoch_ms)}-{rand}-{to_base36(counter)}"


def _random_part() -> str:
    # Math.random().toString(36).substring(2, 6): four base-36 digits. Not a secret.
    return "".join(random.choices(_DIGITS, k=4))


@dataclass(slots=True)
class _Entry:
    settle: Settle
    timer: TimerHandle
    pending_timer: TimerHandle | None


class PendingAcks:
    """Callback id → waiting caller. Ids count from 1 per registry, as in the original."""

    __slots__ = ("_clock", "_counter", "_entries", "_invoke", "limit")

    def __init__(
        self,
        clock: Clock,
        *,
        limit: int,
        invoke: Callable[[Callable[[], object]], None],
    ) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._counter = itertools.count(1)
        self._invoke = invoke
        self.limit = limit

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, callback_id: object) -> bool:
        return callback_id in self._entries

    def new_id(self) -> str:
        return format_callback_id(int(time.time() * 1000), _random_part(), next(self._counter))

    def add(
        self,
        settle: Settle,
        *,
        callback_id: str | None = None,
        timeout: float,
        timeout_text: str,
        on_pending: Callable[[], object] | None = None,
        pending_timeout: float | None = None,
    ) -> str:
        """Register an entry and arm its timers; returns its callback id (a new one if
        ``callback_id`` is not given; see :meth:`new_id`).

        ``timeout_text`` + id is the timeout message (``"Is callback timeout: "`` for callbacks,
        ``"Is promise callback timeout: "`` for promises, as in the original). ``on_pending``
        runs once after ``pending_timeout`` if the ack has not arrived and
        ``pending_timeout < timeout``. Raises ``TooManyPendingAcksError`` at the limit.
        """
        if len(self._entries) >= self.limit:
            raise TooManyPendingAcksError(self.limit)
        if callback_id is None:
            callback_id = self.new_id()
        elif callback_id in self._entries:
            raise ValueError(f"callback id {callback_id!r} is already pending")
        cid = callback_id

        def expire() -> None:
            self._settle(cid, AckTimeoutError(cid, timeout_text + cid))

        timer = self._clock.call_later(timeout, expire)
        pending_timer = None
        if on_pending is not None and pending_timeout is not None and pending_timeout < timeout:
            pending_timer = self._clock.call_later(
                pending_timeout, lambda: self._fire_pending(cid, on_pending)
            )
        self._entries[callback_id] = _Entry(settle, timer, pending_timer)
        return callback_id

    def resolve(self, callback_id: str, payload: Any) -> bool:
        """The server acked ``callback_id``; False if unknown (late, duplicate or foreign)."""
        return self._settle(callback_id, None, payload)

    def fail(self, callback_id: str, error: ConnectorError) -> bool:
        return self._settle(callback_id, error)

    def discard(self, callback_id: str) -> None:
        """Forget an entry without settling it (its caller went away)."""
        entry = self._entries.pop(callback_id, None)
        if entry is not None:
            _cancel(entry)

    def fail_all(self, make_error: Callable[[str], ConnectorError]) -> int:
        """Settle every entry with ``make_error(callback_id)``; returns how many there were."""
        ids = list(self._entries)
        for callback_id in ids:
            self._settle(callback_id, make_error(callback_id))
        return len(ids)

    def _settle(self, callback_id: str, error: ConnectorError | None, payload: Any = None) -> bool:
        entry = self._entries.pop(callback_id, None)
        if entry is None:
            return False
        _cancel(entry)
        entry.settle(error, None if error is not None else payload)
        return True

    def _fire_pending(self, callback_id: str, on_pending: Callable[[], object]) -> None:
        entry = self._entries.get(callback_id)
        if entry is not None:
            entry.pending_timer = None
            self._invoke(on_pending)


def _cancel(entry: _Entry) -> None:
    entry.timer.cancel()
    if entry.pending_timer is not None:
        entry.pending_timer.cancel()
