"""One Redis node: the only module of wsfleet that speaks RESP (through ``hiredis``).

A :class:`RedisLink` holds two connections, each a plain asyncio protocol whose replies are
parsed by ``hiredis`` inside ``data_received``, with no task switch per reply:

- The **publisher** runs every command submitted to it (PUBLISH, the socket directory's scripts,
  the registry's few commands). Commands are packed and written together, without waiting for
  earlier replies (pipelined), at the end of the loop turn that submitted them, or as soon as they
  hold ``timings.flush_bytes`` or the oldest has waited ``timings.flush_delay``, whichever comes
  first: a caller publishing in a long synchronous loop does not hold its messages back until it
  returns. Replies are matched to commands in
  order. While the connection's write buffer is over its high-water mark, commands wait in the
  link's queue, where they can still be re-routed.
- The **subscriber** keeps the set of channels the bus wants, replays it after every reconnect,
  and hands each message to a synchronous callback as soon as it is parsed.

Failures never vanish: when the publisher's connection is lost, or commands wait longer than
``command_timeout`` without any reply, every command sent and not answered, and every queued one,
is handed back to the bus with :attr:`on_failed`, which re-routes them; the link reconnects with
capped exponential backoff and reports every health change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from wsfleet.bus.broker import (
    PUBLISHER,
    SUBSCRIBER,
    BrokerEventHandler,
    CallbackHandler,
    Command,
    FailedCallback,
    HealthCallback,
    LinkError,
    LinkHealth,
    LinkTimings,
    MessageCallback,
    take_unpinned,
)
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_subscriber import SUBSCRIBE_BATCH, RedisSubscriber
from wsfleet.bus.resp import RespConnection, open_connection, pack_command

log = logging.getLogger("wsfleet.bus")

__all__ = ["SUBSCRIBE_BATCH", "Command", "LinkError", "LinkTimings", "RedisLink"]

MOVE_QUIET = 0.25
"""Seconds without a message from the old master after which a subscriber leaves it when the
master moved; it leaves after ``ping_timeout`` at the latest."""


class RedisLink:
    """One Redis node (a :class:`~wsfleet.bus.broker.BrokerLink`)."""

    subscriber_class: type[RedisSubscriber] = RedisSubscriber
    """Replaced by the Sentinel link (wsfleet.bus.sentinel), which resolves the master."""

    def __init__(
        self,
        node: RedisNode,
        handler: BrokerEventHandler | None = None,
        *,
        on_message: MessageCallback | None = None,
        on_health: HealthCallback | None = None,
        on_failed: FailedCallback | None = None,
        timings: LinkTimings | None = None,
    ) -> None:
        if handler is None:
            if on_message is None or on_health is None or on_failed is None:
                raise TypeError("RedisLink needs a handler or all three callbacks")
            handler = CallbackHandler(on_message, on_health, on_failed)
        self.node = node
        self.key = node.key
        self.timings = timings or LinkTimings()
        self._on_message = handler.on_link_message
        self._on_health = handler.on_link_health
        self._on_failed = handler.on_link_failed
        self._on_changed = handler.on_link_changed
        self._queue: deque[Command] = deque()
        self._queued_bytes = 0
        self._oldest_at = 0.0  # time.monotonic() when the oldest queued command was submitted
        self.handed_back = 0
        """Commands handed back because the queue was over ``queue_max_bytes``."""
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._pub: RespConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._said: str | None = None  # the last connect failure logged
        self.health = LinkHealth()
        self._subscriber = self.subscriber_class(
            self, node, self.timings, self.health, self._set_health
        )
        self.publishable = True
        """The operator's intent: False while a hot-added link warms up or a removed one drains."""
        self.admitted = False
        """Set by the bus once the publisher is connected, this link's subscriber has confirmed
        every channel and the other nodes listen here again; cleared when the publisher fails."""
        self.marker: bytes | None = None
        """Channel subscribed last after a (re)connect: once it is confirmed, so is every other
        channel sent before it (Redis runs one connection's commands in order)."""
        self.publisher_connects = 0
        self.batches = 0
        """Writes of the publisher (each carries every command pending: those of one loop turn,
        or ``timings.flush_bytes`` of them)."""

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
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriber_healthy(self) -> bool:
        return self.health.subscriber and not self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Commands queued or sent and not answered yet."""
        pub = self._pub
        return len(self._queue) + (len(pub.waiting) if pub is not None else 0)

    def __repr__(self) -> str:
        return f"<RedisLink {self.node}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        name = self.key
        if self._closed or self._tasks:
            return
        self._tasks = {
            asyncio.create_task(self._publisher_loop(), name=f"wsfleet-redis-pub-{name}"),
            asyncio.create_task(
                self._subscriber.run(self._on_message, self._on_changed),
                name=f"wsfleet-redis-sub-{name}",
            ),
            asyncio.create_task(
                self._subscriber.reconcile_loop(), name=f"wsfleet-redis-subs-{name}"
            ),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-redis-ping-{name}"),
        }

    async def aclose(self) -> None:
        """Stop; commands queued or not answered are handed back through ``on_failed``."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        leftover: list[Command] = []
        conn = self._pub
        if conn is not None:
            leftover.extend(conn.waiting)
            conn.waiting.clear()
            conn.close()
        self._pub = None
        self._subscriber.close(LinkError(f"{self.node} was removed"))
        self._set_health(PUBLISHER, False, "close", None)
        self._set_health(SUBSCRIBER, False, "close", None)
        leftover.extend(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        if leftover:
            self._on_failed(self, leftover, LinkError(f"{self.node} was removed"))

    # -- publisher ---------------------------------------------------------------------------

    def submit(self, command: Command) -> None:
        try:
            packed = command.packed = pack_command(command.args)
        except (TypeError, ValueError) as exc:  # a bad argument: fail this command alone
            _refuse(command, self.node, exc)
            return
        size = len(packed)
        if self._queue and self._queued_bytes + size > self.timings.queue_max_bytes:
            self.handed_back += 1
            self._on_failed(self, [command], LinkError(f"the publish queue of {self.node} is full"))
            return
        queue = self._queue
        queue.append(command)
        self._queued_bytes += size
        timings = self.timings
        if len(queue) == 1:
            self._oldest_at = time.monotonic()
            due = size >= timings.flush_bytes
        else:
            due = (
                self._queued_bytes >= timings.flush_bytes
                or time.monotonic() - self._oldest_at >= timings.flush_delay
            )
        conn = self._pub
        if conn is None:
            return
        if due and conn.is_open:  # a lost connection fails in the callback, not the caller
            self._write_batch()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """The end of the loop turn: write what is pending."""
        self._flush_scheduled = False
        self._write_batch()

    def _write_batch(self) -> None:
        """Write everything queued in one packed batch, unless the connection is paused (or
        holds new calls back behind scripts resent after ``NOSCRIPT``)."""
        conn = self._pub
        queue = self._queue
        if conn is None or not queue or conn.paused or conn.held:
            return
        was_idle = not conn.waiting
        try:
            conn.send(queue)
        except (TypeError, ValueError) as exc:  # a bad argument: fail that command alone
            self._send_one_by_one(conn, exc)
        except (OSError, RuntimeError) as exc:
            self._publisher_failed(conn, exc)
            return
        else:
            queue.clear()
        self._queued_bytes = 0
        self.batches += 1
        if was_idle and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(
                self.timings.command_timeout, self._check_progress
            )

    def _drained(self) -> None:
        if not self._queue:
            self._on_changed(self)

    def _send_one_by_one(self, conn: RespConnection, error: Exception) -> None:
        log.debug("Redis %s: unencodable command in a batch (%s)", self.node, error)
        queue = self._queue
        while queue:
            command = queue[0]
            try:
                conn.send((command,))
            except (TypeError, ValueError) as exc:
                _refuse(command, self.node, exc)
            except (OSError, RuntimeError) as exc:
                self._publisher_failed(conn, exc)  # hands the queue back, this one included
                return
            queue.popleft()
        self._queued_bytes = 0

    def _check_progress(self) -> None:
        self._watchdog = None
        conn = self._pub
        if conn is None or not conn.waiting:
            return
        loop = asyncio.get_running_loop()
        silent = loop.time() - conn.progress_at
        timeout = self.timings.command_timeout
        if silent >= timeout:
            self._publisher_failed(conn, TimeoutError("no answer in time"))
        else:
            self._watchdog = loop.call_later(timeout - silent, self._check_progress)

    def _publisher_failed(self, conn: RespConnection, error: BaseException) -> None:
        """Drop the publisher connection and hand every unanswered or queued command back."""
        if self._pub is not conn:
            return
        self._pub = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        log.warning("Redis %s publisher failed: %s", self.node, error)
        conn.fail(error)
        self._set_health(PUBLISHER, False, "error", str(error))
        unanswered = list(conn.waiting)
        conn.waiting.clear()
        if unanswered:
            self._on_failed(self, unanswered, error)
        self._fail_queued(error)

    def take_queued(self) -> list[Command]:
        """Remove and return the commands not sent yet that may run elsewhere (not pinned), in
        order, to re-route them."""
        taken = take_unpinned(self._queue)
        self._queued_bytes = sum(len(c.packed or b"") for c in self._queue)
        return taken

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        """Run one command on this node (pinned: never re-routed) and return its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(Command(args, future, pinned=True, retry=False))
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races
        # with the reply, and the cancelled caller (a registry loop) would then never stop.
        async with asyncio.timeout(timeout or self.timings.command_timeout * 2):
            return await future

    async def _publisher_loop(self) -> None:
        backoff = self.timings.backoff_initial
        while not self._closed:  # also ends if a library swallowed a cancel
            try:
                conn = await open_connection(await self.resolve(), self.timings)
            except (OSError, TimeoutError, LinkError) as exc:
                error = str(exc) or type(exc).__name__
                if error != self._said:  # said once, not on every retry
                    self._said = error
                    node = str(self.node)
                    log.warning("Redis %s", error if node in error else f"{node}: {error}")
                self._set_health(PUBLISHER, False, "error", error)
                self._fail_queued(exc)
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            backoff = self.timings.backoff_initial
            self._said = None
            conn.on_writable = self._write_batch
            conn.on_idle = self._drained
            self._pub = conn
            self.publisher_connects += 1
            self._set_health(PUBLISHER, True, "connect", None)
            self._write_batch()
            try:
                await conn.closed
            except asyncio.CancelledError:
                conn.close()
                raise
            if self._pub is conn:  # lost by itself (not failed by the watchdog)
                self._publisher_failed(conn, conn.error or ConnectionResetError("lost"))

    async def resolve(self) -> RedisNode:
        """The address to (re)connect the publisher to."""
        return self.node

    def master_moved(self) -> None:
        """A Sentinel named another master: the publisher reconnects at once (what it had not
        seen answered goes out again there); the subscriber leaves the old master once no node
        publishes there any more (:meth:`RedisSubscriber.leave_when_quiet`)."""
        if self._pub is not None:
            self._pub.fail(ConnectionResetError("the master moved"))
        timings = self.timings
        self._subscriber.leave_when_quiet(MOVE_QUIET, max(timings.ping_timeout, MOVE_QUIET))

    def _fail_queued(self, error: BaseException) -> None:
        if self._queue:
            leftover = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            self._on_failed(self, leftover, error)

    # -- subscriber (wsfleet.bus.redis_subscriber) -----------------------------------------

    def set_channels(self, desired: set[bytes]) -> None:
        self._subscriber.set_channels(desired)

    def update_channels(self, added: set[bytes], removed: set[bytes]) -> None:
        self._subscriber.update_channels(added, removed)

    def is_subscribed(self, channels: Iterable[bytes]) -> bool:
        return self._subscriber.confirmations.covers(channels)

    async def wait_subscribed(self, channels: Iterable[bytes]) -> None:
        await self._subscriber.wait_subscribed(channels)

    def force_resubscribe(self) -> None:
        """Drop the subscriber connection; the subscriber reconnects and replays every channel."""
        self._subscriber.force_resubscribe()

    # -- health ------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.timings.ping_interval
        while not self._closed:  # also ends if a library swallowed a cancel
            await asyncio.sleep(interval)
            if self._pub is not None:
                start = loop.time()
                try:
                    await self.call("PING", timeout=self.timings.ping_timeout)
                    self.health.latency = loop.time() - start
                except (TimeoutError, LinkError) as exc:
                    log.debug("Redis %s: publisher ping failed: %r", self.node, exc)
            await asyncio.sleep(0)  # one more loop turn: what is buffered is read before judging
            self._subscriber.ping(loop.time())

    def _set_health(self, role: str, healthy: bool, event: str, error: str | None) -> None:
        if self.health.update(role, healthy, error):
            self._on_health(self, role, healthy, event, error)


def _refuse(command: Command, node: RedisNode, error: Exception) -> None:
    """A command that cannot be encoded fails alone: its caller learns why, or it is logged."""
    future = command.future
    if future is not None and not future.done():
        future.set_exception(LinkError(f"cannot send to {node}: {error}"))
    else:
        log.warning("dropped an unencodable command for %s: %s", node, error)
