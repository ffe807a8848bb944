"""Pending cross-server calls: ids, deadlines, replies, outcomes. No I/O.

Deadlines are kept per timeout value, in call order, under one timer armed for the earliest one
(a timer per call cost more than the rest of the call's bookkeeping). A call that ends (last reply,
timeout, cancel) leaves the table at once, and its deadline entry is dropped lazily; nothing of it
fires later (W1 of the original crashed on exactly that). The table is bounded: beyond
``max_pending`` a new call fails at once.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from wsfleet.latency import LatencyHistogram
from wsfleet.protocol.errors import WsfleetError

TIMEOUT_MESSAGE = "Cross-server callback timed out."


class CallMode(StrEnum):
    COUNT = "count"
    """Done after ``expected_responses`` replies (the original's rule; each reply counts)."""
    ALL = "all"
    """Done when every expected node answered (all live nodes from the registry, or targets)."""
    FIRST = "first"
    """Done at the first reply."""
    QUORUM = "quorum"
    """Done when ``quorum`` distinct nodes answered."""


class Outcome(StrEnum):
    ANSWERED = "answered"
    TIMED_OUT = "timed-out"
    LEFT = "left"
    """The node left the fleet (its lease expired or it deregistered) before answering."""
    BUSY = "busy"
    """The node answered that it runs too many cross-server requests already."""


class TooManyPendingCallsError(WsfleetError):
    """The pending-call table is full."""


@dataclass(slots=True)
class CrossServerResult:
    """The outcome of an awaited cross-server call."""

    success: bool
    callback_id: str
    responses: dict[str, Any] = field(default_factory=dict)
    """Reply envelope data by responding server (the original's ``responses``)."""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    """Per expected node: answered, timed out or left (modes ``all`` and ``quorum``)."""
    unresponded_count: int = 0
    message: str | None = None

    @property
    def payloads(self) -> dict[str, Any]:
        """Just the replied values, by server."""
        return {name: data.get("payload") for name, data in self.responses.items()}

    def to_original(self) -> dict[str, Any]:
        """The original ``emitCrossServerWithPromise`` result shape."""
        if self.success:
            return {"success": True, "responses": self.responses}
        result: dict[str, Any] = {"success": False, "message": self.message or TIMEOUT_MESSAGE}
        if self.message == TIMEOUT_MESSAGE or self.message is None:
            result["responses"] = self.responses
            result["unrespondedCount"] = self.unresponded_count
        return result


OriginalCallback = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class PendingCall:
    callback_id: str
    mode: CallMode
    expected: int
    expected_nodes: frozenset[str] | None
    future: asyncio.Future[CrossServerResult] | None
    callback: OriginalCallback | None
    replies: dict[str, Any] = field(default_factory=dict)
    count: int = 0
    started: float = 0.0
    answered: int = 0
    """Expected nodes that replied (modes ``all`` and ``quorum``)."""
    left: set[str] = field(default_factory=set)
    """Expected nodes that left the fleet before replying."""
    busy: set[str] = field(default_factory=set)
    """Nodes that answered busy."""

    def remaining(self) -> int:
        if self.mode is CallMode.COUNT:
            return max(self.expected - self.count, 0)
        if self.mode is CallMode.FIRST:
            return 0 if self.count else 1
        if self.mode is CallMode.QUORUM:
            return max(self.expected - len(self.replies), 0)
        assert self.expected_nodes is not None
        return len(self.expected_nodes) - self.answered - len(self.left)


class PendingCalls:
    def __init__(self, server_name: str, max_pending: int = 10_000) -> None:
        self._calls: dict[str, PendingCall] = {}
        self._counter = itertools.count(1)
        self._prefix = server_name[-6:]
        self.max_pending = max_pending
        self.is_alive: Callable[[str], bool] = lambda name: True
        self._deadlines: dict[float, deque[tuple[float, str]]] = {}
        """Per timeout value: (deadline, callback id) in call order, so deadlines ascend."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._ms = -1
        self._ms_text = ""
        self.completed = 0
        self.timed_out = 0
        self.failed = 0
        #: Per call mode, from sending the call to its result.
        self.durations: dict[str, LatencyHistogram] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def new_id(self) -> str:
        """The original id format: ``<name[-6:]>-<ms base36>-<4 random>-<n base36>``."""
        ms = int(time.time() * 1000)
        if ms != self._ms:
            self._ms, self._ms_text = ms, _b36(ms)
        rand = random.getrandbits(22) % 1_679_616  # 36**4
        return (
            f"{self._prefix}-{self._ms_text}-{_PAIRS[rand // 1296]}{_PAIRS[rand % 1296]}"
            f"-{_b36(next(self._counter))}"
        )

    def open(
        self,
        *,
        mode: CallMode,
        expected: int,
        expected_nodes: frozenset[str] | None,
        timeout: float,
        want_future: bool,
        callback: OriginalCallback | None = None,
    ) -> PendingCall:
        if len(self._calls) >= self.max_pending:
            raise TooManyPendingCallsError(
                f"{self.max_pending} cross-server calls are already waiting for replies"
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        call = PendingCall(
            callback_id=self.new_id(),
            mode=mode,
            expected=expected,
            expected_nodes=expected_nodes,
            future=loop.create_future() if want_future else None,
            callback=callback,
            started=now,
        )
        self._calls[call.callback_id] = call
        deadline = now + timeout
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = deque()
        else:
            calls = self._calls
            while queue and queue[0][1] not in calls:  # ended before their deadline
                queue.popleft()
        queue.append((deadline, call.callback_id))
        if deadline < self._timer_at:
            self._arm(loop, deadline)
        return call

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._on_timer)
        self._timer_at = when

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        loop = asyncio.get_running_loop()
        now = loop.time() + 0.001  # timers may fire up to a clock tick early
        calls = self._calls
        earliest = math.inf
        for timeout, queue in list(self._deadlines.items()):
            while queue:
                deadline, callback_id = queue[0]
                if callback_id in calls:
                    if deadline > now:
                        break
                    queue.popleft()
                    self._expire(callback_id)  # may open new calls (appended, later)
                else:
                    queue.popleft()
            if queue:
                earliest = min(earliest, queue[0][0])
            elif self._deadlines.get(timeout) is queue:
                del self._deadlines[timeout]
        if earliest < self._timer_at:
            self._arm(loop, earliest)

    def resolve(
        self, callback_id: str, sender: str, data: dict[str, Any], *, busy: bool = False
    ) -> bool:
        """Record one reply (``busy``: the node refused the request); False when no such call
        is pending (late or foreign reply)."""
        call = self._calls.get(callback_id)
        if call is None:
            return False
        if busy:
            call.busy.add(sender)
        call.count += 1
        replies = call.replies
        nodes = call.expected_nodes
        if nodes is not None and sender not in replies and sender in nodes:
            call.answered += 1
        replies[sender] = data
        remaining = call.remaining()
        if call.callback is not None:
            call.callback({"success": True, "data": data, "remainingResponses": remaining})
        if remaining <= 0:
            self._finish(call, success=True)
        return True

    def node_left(self, name: str) -> int:
        """``name`` left the fleet: calls that still wait for it stop waiting (it reports
        ``left``); a call with nothing else to wait for ends now, and so does a quorum call that
        the nodes still to answer can no longer reach. Returns the calls touched."""
        touched = 0
        for call in list(self._calls.values()):
            nodes = call.expected_nodes
            if nodes is None or name not in nodes or name in call.replies or name in call.left:
                continue
            touched += 1
            call.left.add(name)
            gone = ", ".join(sorted(call.left))
            if call.mode is CallMode.ALL and call.remaining() <= 0:
                self._finish(call, success=False, message=f"left the fleet before replying: {gone}")
            elif call.mode is CallMode.QUORUM:
                can_answer = sum(1 for n in nodes if n not in call.replies and n not in call.left)
                if can_answer < call.remaining():
                    self._finish(
                        call,
                        success=False,
                        message=f"quorum of {call.expected} out of reach: {gone} left the fleet "
                        "before replying",
                    )
        return touched

    def resolve_empty(self, call: PendingCall) -> None:
        """A call that expects nobody (e.g. ``all`` with no other live node) is done at once."""
        self._finish(call, success=True)

    def cancel(self, callback_id: str) -> bool:
        """Forget a call and its timer (``deleteCrossServerCallback``); its awaiter is cancelled."""
        call = self._calls.pop(callback_id, None)
        if call is None:
            return False
        if call.future is not None and not call.future.done():
            call.future.cancel()
        return True

    def fail_all(self, message: str) -> None:
        for callback_id in list(self._calls):
            call = self._calls[callback_id]
            self._finish(call, success=False, message=message)
        self._deadlines.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def _expire(self, callback_id: str) -> None:
        call = self._calls.get(callback_id)
        if call is None:
            return
        self.timed_out += 1
        if call.callback is not None:
            call.callback(
                {
                    "success": False,
                    "error": TIMEOUT_MESSAGE,
                    "callbackId": callback_id,
                    "unrespondedCount": call.remaining(),
                }
            )
        self._finish(call, success=False, message=TIMEOUT_MESSAGE)

    def _finish(self, call: PendingCall, *, success: bool, message: str | None = None) -> None:
        self._calls.pop(call.callback_id, None)
        self.completed += 1
        if not success and message != TIMEOUT_MESSAGE:
            self.failed += 1
        hist = self.durations.get(call.mode)
        if hist is None:
            hist = self.durations[call.mode] = LatencyHistogram()
        hist.observe(asyncio.get_running_loop().time() - call.started)
        outcomes: dict[str, Outcome] = {}
        if call.expected_nodes is not None:
            for name in call.expected_nodes:
                if name in call.busy:
                    outcomes[name] = Outcome.BUSY
                elif name in call.replies:
                    outcomes[name] = Outcome.ANSWERED
                elif name in call.left:
                    outcomes[name] = Outcome.LEFT
                else:
                    outcomes[name] = Outcome.TIMED_OUT if self.is_alive(name) else Outcome.LEFT
        for name in call.replies:
            outcomes.setdefault(name, Outcome.BUSY if name in call.busy else Outcome.ANSWERED)
        if call.future is not None and not call.future.done():
            call.future.set_result(
                CrossServerResult(
                    success=success,
                    callback_id=call.callback_id,
                    responses=call.replies,  # the call is over: nothing changes it any more
                    outcomes=outcomes,
                    unresponded_count=call.remaining(),
                    message=message,
                )
            )


_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_PAIRS: Final = [a + b for a in _DIGITS for b in _DIGITS]
"""Base-36 digit pairs, ``00`` to ``zz``."""


def _b36(value: int) -> str:
    if value < 36:
        return _DIGITS[value]
    pairs: list[str] = []
    while value >= 1296:
        value, rem = divmod(value, 1296)
        pairs.append(_PAIRS[rem])
    pairs.append(_PAIRS[value].lstrip("0"))
    return "".join(reversed(pairs))
