"""Presence events and the bounded queue that hands them to the application's handlers.

Handlers (``server.on_presence(namespace)``) run one event at a time, in arrival order, in one
task owned by the node. The queue between the bus and that task holds at most
``presence_queue_max_bytes`` (an event weighs its names plus :data:`EVENT_OVERHEAD`). Overflow
policy: **drop-newest, then tell** — an event that does not fit is dropped and counted
(``dropped``), and once the queue has room again each handler of that namespace gets one
``overflow`` event, so it can resync (``cluster_room_socket_ids``) instead of trusting a view
with holes.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.presence")

PresenceKind = Literal["join", "leave", "overflow"]
EVENT_OVERHEAD: Final = 128


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A socket joined or left a room on some node of the fleet.

    ``reason``: ``joined``, ``left`` (leave_room, remove_room, the socket closed or moved) or
    ``node-lost`` (its node stopped refreshing its lease: sent by a surviving node). For
    ``overflow``, only ``namespace`` is set: events of it were dropped, resync.
    """

    kind: PresenceKind
    namespace: str
    room_id: str
    socket_id: str
    node: str
    reason: str

    @property
    def weight(self) -> int:
        return len(self.namespace) + len(self.room_id) + len(self.socket_id) + EVENT_OVERHEAD


PresenceHandler = Callable[[PresenceEvent], object]


class PresenceQueue:
    """Events waiting for the handlers of their namespace, bounded in bytes."""

    def __init__(self, max_bytes: int, tasks: TaskOwner) -> None:
        self.max_bytes = max_bytes
        self.handlers: dict[str, list[PresenceHandler]] = {}
        self.dropped = 0
        self.handled = 0
        self._tasks = tasks
        self._events: deque[PresenceEvent] = deque()
        self._bytes = 0
        self._overflowed: set[str] = set()
        self._worker: Awaitable[object] | None = None

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: PresenceEvent) -> bool:
        """Queue ``event`` for its namespace's handlers; False when dropped (overflow)."""
        if event.namespace not in self.handlers:
            return True
        weight = event.weight
        if self._bytes + weight > self.max_bytes:
            self.dropped += 1
            if event.namespace not in self._overflowed:
                log.warning(
                    "presence queue full (%d bytes): events of %r dropped, handlers will be told",
                    self.max_bytes,
                    event.namespace,
                )
            self._overflowed.add(event.namespace)
            return False
        self._events.append(event)
        self._bytes += weight
        if self._worker is None:
            self._worker = self._tasks.spawn(self._run(), "wsfleet-presence-handlers")
        return True

    async def _run(self) -> None:
        try:
            while self._events or self._overflowed:
                if self._events:
                    event = self._events.popleft()
                    self._bytes -= event.weight
                else:
                    namespace = self._overflowed.pop()
                    event = PresenceEvent("overflow", namespace, "", "", "", "overflow")
                await self._call(event)
        finally:
            self._worker = None

    async def _call(self, event: PresenceEvent) -> None:
        for handler in list(self.handlers.get(event.namespace, ())):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("presence handler for %r failed", event.namespace)
        self.handled += 1
