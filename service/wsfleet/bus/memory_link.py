"""A :class:`~wsfleet.bus.broker.BrokerLink` to a process-local :class:`MemoryBroker`.

It behaves like :class:`~wsfleet.bus.redis_link.RedisLink` where the bus can tell: commands of
one loop turn go in one batch (sooner once they hold ``timings.flush_bytes``), replies resolve
in order, a batch without a reply within ``command_timeout`` (a frozen broker) fails the
publisher and hands its commands back, a lost connection reconnects with capped exponential
backoff, and the subscriber replays every channel (``marker`` last) after a reconnect. It starts
no task: everything is a callback or a timer on the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any

from wsfleet.bus.broker import (
    PUBLISHER,
    SUBSCRIBER,
    BrokerEventHandler,
    Command,
    LinkError,
    LinkHealth,
    LinkTimings,
    command_size,
    take_unpinned,
)
from wsfleet.bus.confirmations import Confirmations
from wsfleet.bus.memory import MemoryConnection, broker
from wsfleet.bus.nodes import RedisNode
from wsfleet.clock import Clock, LoopClock, TimerHandle, wait_with_timeout

log = logging.getLogger("wsfleet.bus")


class MemoryLink:
    """One ``memory://<name>`` broker node."""

    def __init__(
        self,
        node: RedisNode,
        handler: BrokerEventHandler,
        *,
        timings: LinkTimings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.node = node
        self.key = node.key
        self.timings = timings or LinkTimings()
        self.clock: Clock = clock or LoopClock()
        self.broker = broker(node.host)
        self._handler = handler
        self._queue: deque[Command] = deque()
        self._queued_bytes = 0
        self._waiting: deque[Command] = deque()
        self._flush_scheduled = False
        self._pub: MemoryConnection | None = None
        self._sub: MemoryConnection | None = None
        self._desired: set[bytes] = set()
        self._subs = Confirmations()
        self._timers: dict[str, TimerHandle] = {}
        self._backoff = {PUBLISHER: self.timings.backoff_initial, SUBSCRIBER: 0.0}
        self._started = False
        self._closed = False
        self.health = LinkHealth()
        self.publishable = True
        self.admitted = False
        self.marker: bytes | None = None
        self.publisher_connects = 0
        self.batches = 0

    def __repr__(self) -> str:
        return f"<MemoryLink {self.node}>"

    # -- state -------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        return self.health.latency

    @property
    def publisher_healthy(self) -> bool:
        return self.health.publisher and not self._closed

    @property
    def keys_reachable(self) -> bool:
        return self.health.publisher and not self._closed

    @property
    def subscriber_healthy(self) -> bool:
        return self.health.subscriber and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._waiting)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._connect_publisher()
        self._connect_subscriber()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for conn in (self._pub, self._sub):
            if conn is not None:
                conn.close()
        self._pub = self._sub = None
        self._set_health(PUBLISHER, False, "close", None)
        self._set_health(SUBSCRIBER, False, "close", None)
        leftover = [*self._waiting, *self._queue]
        self._waiting.clear()
        self._queue.clear()
        self._queued_bytes = 0
        if leftover:
            self._handler.on_link_failed(self, leftover, LinkError(f"{self.node} was removed"))
        self._subs.fail_all(LinkError(f"{self.node} was removed"))

    def _later(self, name: str, delay: float, callback: Any) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if not self._closed:
            self._timers[name] = self.clock.call_later(delay, callback)

    def _retry(self, role: str, connect: Any) -> None:
        delay = self._backoff[role] or self.timings.backoff_initial
        self._backoff[role] = min(delay * 2, self.timings.backoff_max)
        self._later(role, delay, connect)

    # -- publisher ---------------------------------------------------------------------------

    def _connect_publisher(self) -> None:
        try:
            conn = self.broker.connect(self)
        except ConnectionError as exc:
            self._set_health(PUBLISHER, False, "error", str(exc))
            self._fail_queued(exc)
            self._retry(PUBLISHER, self._connect_publisher)
            return
        self._backoff[PUBLISHER] = self.timings.backoff_initial
        self._pub = conn
        self.publisher_connects += 1
        self._set_health(PUBLISHER, True, "connect", None)
        self._write_batch()

    def submit(self, command: Command) -> None:
        self._queue.append(command)
        self._queued_bytes += command_size(command)
        if self._pub is None:
            return
        if self._queued_bytes >= self.timings.flush_bytes:
            self._write_batch()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write_batch()

    def _write_batch(self) -> None:
        conn = self._pub
        if conn is None or not self._queue:
            return
        batch = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        try:
            self.broker.run(conn, batch)
        except TypeError:  # an unencodable argument: run the batch one by one
            for command in batch:
                try:
                    self.broker.run(conn, [command])
                except TypeError as exc:
                    if command.future is not None and not command.future.done():
                        command.future.set_exception(LinkError(f"cannot send: {exc}"))
                    continue
                self._waiting.append(command)
        else:
            self._waiting.extend(batch)
        self.batches += 1
        if self._waiting and "watchdog" not in self._timers:
            self._later("watchdog", self.timings.command_timeout, self._no_answer)

    def memory_replies(self, conn: MemoryConnection, replies: list[Any]) -> None:
        if conn is not self._pub:
            return
        waiting = self._waiting
        for reply in replies:
            command = waiting.popleft()
            future = command.future
            if future is None or future.done():
                if isinstance(reply, LinkError):
                    log.warning("memory broker %s: %s", self.node, reply)
                continue
            if isinstance(reply, LinkError):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        timer = self._timers.pop("watchdog", None)
        if timer is not None:
            timer.cancel()
        if waiting:
            self._later("watchdog", self.timings.command_timeout, self._no_answer)
        elif not self._queue:
            self._handler.on_link_changed(self)

    def _no_answer(self) -> None:
        self._timers.pop("watchdog", None)
        if self._pub is not None and self._waiting:
            self._publisher_failed(self._pub, TimeoutError("no answer in time"))

    def _publisher_failed(self, conn: MemoryConnection, error: BaseException) -> None:
        if conn is not self._pub:
            return
        self._pub = None
        conn.close()
        timer = self._timers.pop("watchdog", None)
        if timer is not None:
            timer.cancel()
        self._set_health(PUBLISHER, False, "error", str(error))
        unanswered = list(self._waiting)
        self._waiting.clear()
        if unanswered:
            self._handler.on_link_failed(self, unanswered, error)
        self._fail_queued(error)
        self._retry(PUBLISHER, self._connect_publisher)

    def _fail_queued(self, error: BaseException) -> None:
        if self._queue:
            leftover = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            self._handler.on_link_failed(self, leftover, error)

    def take_queued(self) -> list[Command]:
        taken = take_unpinned(self._queue)
        self._queued_bytes = sum(map(command_size, self._queue))
        return taken

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(Command(args, future, pinned=True, retry=False))
        return await wait_with_timeout(
            self.clock, future, timeout or self.timings.command_timeout * 2
        )

    # -- subscriber --------------------------------------------------------------------------

    def _connect_subscriber(self) -> None:
        try:
            conn = self.broker.connect(self)
        except ConnectionError as exc:
            self._set_health(SUBSCRIBER, False, "error", str(exc))
            self._retry(SUBSCRIBER, self._connect_subscriber)
            return
        self._backoff[SUBSCRIBER] = 0.0
        self._sub = conn
        self._subs.reset()
        self._set_health(SUBSCRIBER, True, "connect", None)
        self._reconcile()

    def set_channels(self, desired: set[bytes]) -> None:
        self._desired = set(desired)
        self._reconcile()

    def update_channels(self, added: set[bytes], removed: set[bytes]) -> None:
        self._desired |= added
        self._desired -= removed
        self._reconcile(added, removed)

    def _reconcile(
        self, added: set[bytes] | None = None, removed: set[bytes] | None = None
    ) -> None:
        """Subscribe what is wanted and not subscribed, drop the reverse: among ``added`` and
        ``removed`` when given (a change), else among every channel."""
        conn = self._sub
        if conn is None:
            return
        wanted = self._desired if added is None else added
        unwanted = conn.subscribed - self._desired if removed is None else removed
        to_add = sorted(wanted - conn.subscribed, key=lambda c: (c == self.marker, c))
        to_drop = sorted(unwanted & conn.subscribed)
        if to_add:
            self.broker.subscribe(conn, to_add)
        if to_drop:
            self.broker.unsubscribe(conn, to_drop)

    def memory_push(self, conn: MemoryConnection, event: tuple[bytes, bytes, Any]) -> None:
        if conn is not self._sub:
            return
        kind, channel, data = event
        if kind == b"message":
            try:
                self._handler.on_link_message(self, channel, data)
            except Exception:
                log.exception("bus message handler failed")
        elif kind == b"subscribe":
            self._subs.confirm(channel)
            self._handler.on_link_changed(self)
        else:
            self._subs.drop(channel)

    def memory_lost(self, conn: MemoryConnection, error: BaseException) -> None:
        if conn is self._pub:
            self._publisher_failed(conn, error)
        elif conn is self._sub:
            self._subscriber_lost(error)

    def _subscriber_lost(self, error: BaseException) -> None:
        conn, self._sub = self._sub, None
        if conn is not None:
            conn.close()
        self._subs.reset()
        self.health.reconnects += 1
        self._set_health(SUBSCRIBER, False, "error", str(error))
        self._retry(SUBSCRIBER, self._connect_subscriber)

    def is_subscribed(self, channels: Iterable[bytes]) -> bool:
        return self._subs.covers(channels)

    async def wait_subscribed(self, channels: Iterable[bytes]) -> None:
        if self._closed and not self._subs.covers(channels):
            raise LinkError(f"{self.node} was removed")
        await self._subs.wait(channels)

    def force_resubscribe(self) -> None:
        if self._sub is not None:
            self._subscriber_lost(ConnectionResetError("resubscribing"))

    def _set_health(self, role: str, healthy: bool, event: str, error: str | None) -> None:
        if self.health.update(role, healthy, error):
            self._handler.on_link_health(self, role, healthy, event, error)
