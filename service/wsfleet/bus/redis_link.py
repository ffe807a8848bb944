"""One Redis node: the only module of wsfleet that imports ``redis``.

A :class:`RedisLink` holds two connections. The **publisher** runs every command submitted to it
(PUBLISH and the registry's few commands) in pipelined batches: one write and one read pass per
batch, however many messages are queued. The **subscriber** keeps the set of channels the bus
wants, replays it after every reconnect, and reads messages in a loop that never waits on anything
but the socket: each message is handed to a synchronous callback.

Failures never vanish: a batch that fails (connection lost, no answer within
``command_timeout``) is handed back to the bus with :attr:`on_failed`, which re-routes it; the link
reconnects with capped exponential backoff and reports every health change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import RedisError, ResponseError

from wsfleet.bus.nodes import RedisNode
from wsfleet.protocol.errors import WsfleetError

log = logging.getLogger("wsfleet.bus")

MAX_BATCH: Final = 512
SUBSCRIBE_BATCH: Final = 512


class LinkError(WsfleetError):
    """A command could not be run on a Redis node."""


@dataclass(slots=True)
class Command:
    """A command for the publisher. ``future`` (optional) gets the reply or the error."""

    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None = None
    routing_key: str = ""
    attempts: int = 0
    retry: bool = True
    pinned: bool = False
    """Pinned commands must run on this link (probes, registry writes): never re-routed."""
    keyed: bool = False
    """Keyed commands (socket directory) are routed by rendezvous hash, whatever the strategy."""


HealthCallback = Callable[["RedisLink", str, bool, str, str | None], None]
MessageCallback = Callable[["RedisLink", bytes, bytes], None]
FailedCallback = Callable[["RedisLink", list[Command], BaseException], None]


@dataclass(slots=True)
class LinkTimings:
    connect_timeout: float = 2.0
    command_timeout: float = 2.0
    ping_interval: float = 5.0
    ping_timeout: float = 2.0
    backoff_initial: float = 0.05
    backoff_max: float = 2.0


@dataclass(slots=True)
class _Health:
    publisher: bool = False
    subscriber: bool = False
    reconnects: int = 0
    last_error: str | None = None
    latency: float = 0.0


def _connection(node: RedisNode, timings: LinkTimings) -> Connection:
    kwargs: dict[str, Any] = {
        "host": node.host,
        "port": node.port,
        "db": node.db,
        "username": node.username,
        "password": node.password,
        "socket_timeout": None,
        "socket_connect_timeout": timings.connect_timeout,
        "client_name": "wsfleet",
    }
    if node.tls:
        return SSLConnection(**kwargs)
    return Connection(**kwargs)


class RedisLink:
    def __init__(
        self,
        node: RedisNode,
        *,
        on_message: MessageCallback,
        on_health: HealthCallback,
        on_failed: FailedCallback,
        timings: LinkTimings | None = None,
    ) -> None:
        self.node = node
        self.key = node.key
        self.timings = timings or LinkTimings()
        self._on_message = on_message
        self._on_health = on_health
        self._on_failed = on_failed
        self._queue: deque[Command] = deque()
        self._wakeup = asyncio.Event()
        self._desired: set[bytes] = set()
        self._requested: set[bytes] = set()
        self._confirmed: set[bytes] = set()
        self._sub_changed = asyncio.Event()
        self._confirm_waiters: list[tuple[frozenset[bytes], asyncio.Future[None]]] = []
        self._pub: Connection | None = None
        self._sub: Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._last_sub_pong = 0.0
        self.health = _Health()
        self.publishable = True
        """The operator's intent: False while a hot-added link warms up or a removed one drains."""
        self.admitted = False
        """Set by the bus once the publisher is connected, this link's subscriber has confirmed
        every channel and the other nodes listen here again; cleared when the publisher fails."""
        self.marker: bytes | None = None
        """Channel subscribed last after a (re)connect: once it is confirmed, so is every other
        channel sent before it (Redis runs one connection's commands in order)."""
        self.publisher_connects = 0
        self._in_flight = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        return self.health.latency

    @property
    def publisher_healthy(self) -> bool:
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
        return len(self._queue) + self._in_flight

    def __repr__(self) -> str:
        return f"<RedisLink {self.node}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        name = self.key
        self._tasks = [
            asyncio.create_task(self._writer_loop(), name=f"wsfleet-redis-pub-{name}"),
            asyncio.create_task(self._reader_loop(), name=f"wsfleet-redis-sub-{name}"),
            asyncio.create_task(self._reconcile_loop(), name=f"wsfleet-redis-subs-{name}"),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-redis-ping-{name}"),
        ]

    async def aclose(self) -> None:
        """Stop; queued commands are handed back through ``on_failed``."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for conn in (self._pub, self._sub):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
        self._pub = self._sub = None
        self._set_health("publisher", False, "close", None)
        self._set_health("subscriber", False, "close", None)
        leftover = list(self._queue)
        self._queue.clear()
        if leftover:
            self._on_failed(self, leftover, LinkError(f"{self.node} was removed"))
        for _, waiter in self._confirm_waiters:
            if not waiter.done():
                waiter.set_exception(LinkError(f"{self.node} was removed"))
        self._confirm_waiters.clear()

    # -- publisher ---------------------------------------------------------------------------

    def submit(self, command: Command) -> None:
        self._queue.append(command)
        self._wakeup.set()

    def take_queued(self) -> list[Command]:
        """Remove and return the commands not sent yet that may run elsewhere (not pinned), in
        order, to re-route them."""
        taken = [c for c in self._queue if not c.pinned]
        if taken:
            kept = [c for c in self._queue if c.pinned]
            self._queue.clear()
            self._queue.extend(kept)
        return taken

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        """Run one command on this node (pinned: never re-routed) and return its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(Command(args, future, pinned=True, retry=False))
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races
        # with the reply, and the cancelled caller (a registry loop) would then never stop.
        async with asyncio.timeout(timeout or self.timings.command_timeout * 2):
            return await future

    async def _connect_publisher(self) -> Connection:
        conn = _connection(self.node, self.timings)
        async with asyncio.timeout(self.timings.connect_timeout):
            await conn.connect()  # type: ignore[no-untyped-call]
        return conn

    async def _writer_loop(self) -> None:
        backoff = self.timings.backoff_initial
        while not self._closed:  # also ends if redis-py swallowed a cancel
            if self._pub is None:
                try:
                    self._pub = await self._connect_publisher()
                except (RedisError, OSError, TimeoutError) as exc:
                    self._set_health("publisher", False, "error", str(exc))
                    self._fail_queued(exc)
                    await asyncio.sleep(backoff * (1 + random.random()))
                    backoff = min(backoff * 2, self.timings.backoff_max)
                    continue
                backoff = self.timings.backoff_initial
                self.publisher_connects += 1
                self._set_health("publisher", True, "connect", None)
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            conn = self._pub
            answered = 0
            self._in_flight = len(batch)
            try:
                async with asyncio.timeout(self.timings.command_timeout):
                    await conn.send_packed_command(
                        conn.pack_commands([c.args for c in batch]), check_health=False
                    )
                    for command in batch:
                        try:
                            reply = await conn.read_response()
                        except ResponseError as exc:
                            reply = exc
                        answered += 1
                        future = command.future
                        if future is not None and not future.done():
                            if isinstance(reply, ResponseError):
                                future.set_exception(LinkError(f"{self.node}: {reply}"))
                            else:
                                future.set_result(reply)
            except (RedisError, OSError, TimeoutError) as exc:
                error = exc if str(exc) else TimeoutError("no answer in time")
                log.warning("Redis %s publisher failed: %s", self.node, error)
                self._pub = None
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
                self._set_health("publisher", False, "error", str(error))
                self._on_failed(self, batch[answered:], error)
                self._fail_queued(error)
            finally:
                self._in_flight = 0

    def _fail_queued(self, error: BaseException) -> None:
        if self._queue:
            leftover = list(self._queue)
            self._queue.clear()
            self._on_failed(self, leftover, error)

    # -- subscriber --------------------------------------------------------------------------

    def set_channels(self, desired: set[bytes]) -> None:
        self._desired = set(desired)
        self._sub_changed.set()

    def is_subscribed(self, channels: Iterable[bytes]) -> bool:
        return self._confirmed.issuperset(channels)

    async def wait_subscribed(self, channels: Iterable[bytes]) -> None:
        wanted = frozenset(channels)
        if self._confirmed.issuperset(wanted):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm_waiters.append((wanted, future))
        await future

    async def _reader_loop(self) -> None:
        backoff = self.timings.backoff_initial
        while not self._closed:  # also ends if redis-py swallowed a cancel
            conn = _connection(self.node, self.timings)
            try:
                async with asyncio.timeout(self.timings.connect_timeout):
                    await conn.connect()  # type: ignore[no-untyped-call]
            except (RedisError, OSError, TimeoutError) as exc:
                self._set_health("subscriber", False, "error", str(exc))
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            backoff = self.timings.backoff_initial
            self._sub = conn
            self._requested = set()
            self._confirmed = set()
            self._last_sub_pong = asyncio.get_running_loop().time()
            self._sub_changed.set()
            self._set_health("subscriber", True, "connect", None)
            try:
                await self._read_messages(conn)
            except (RedisError, OSError) as exc:
                log.warning("Redis %s subscriber failed: %s", self.node, exc)
                self._set_health("subscriber", False, "error", str(exc) or "connection lost")
            finally:
                self._sub = None
                self._requested = set()
                self._confirmed = set()
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            self.health.reconnects += 1

    async def _read_messages(self, conn: Connection) -> None:
        on_message = self._on_message
        loop = asyncio.get_running_loop()
        while True:
            # push_request: pub/sub pushes are returned instead of going to a push handler
            response = await conn.read_response(push_request=True)
            if response == b"PONG":  # PING answered in subscribed mode (parser-dependent shape)
                self._last_sub_pong = loop.time()
                continue
            if not isinstance(response, list) or not response:
                continue
            kind = response[0]
            if kind == b"message":
                try:
                    on_message(self, response[1], response[2])
                except Exception:
                    log.exception("bus message handler failed")
            elif kind == b"subscribe":
                self._confirmed.add(response[1])
                self._resolve_waiters()
            elif kind == b"unsubscribe":
                self._confirmed.discard(response[1])

    def _resolve_waiters(self) -> None:
        if not self._confirm_waiters:
            return
        still: list[tuple[frozenset[bytes], asyncio.Future[None]]] = []
        for wanted, future in self._confirm_waiters:
            if future.done():
                continue
            if self._confirmed.issuperset(wanted):
                future.set_result(None)
            else:
                still.append((wanted, future))
        self._confirm_waiters = still

    async def _reconcile_loop(self) -> None:
        while not self._closed:  # also ends if redis-py swallowed a cancel
            await self._sub_changed.wait()
            self._sub_changed.clear()
            conn = self._sub
            if conn is None:
                continue
            marker = self.marker
            to_add = sorted(self._desired - self._requested, key=lambda c: (c == marker, c))
            to_drop = sorted(self._requested - self._desired)
            try:
                for i in range(0, len(to_add), SUBSCRIBE_BATCH):
                    chunk = to_add[i : i + SUBSCRIBE_BATCH]
                    await conn.send_command("SUBSCRIBE", *chunk, check_health=False)
                    self._requested.update(chunk)
                for i in range(0, len(to_drop), SUBSCRIBE_BATCH):
                    chunk = to_drop[i : i + SUBSCRIBE_BATCH]
                    await conn.send_command("UNSUBSCRIBE", *chunk, check_health=False)
                    self._requested.difference_update(chunk)
            except (RedisError, OSError) as exc:
                log.debug(
                    "Redis %s: subscription change failed (%s); retried on reconnect",
                    self.node,
                    exc,
                )

    # -- health ------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.timings.ping_interval
        while not self._closed:  # also ends if redis-py swallowed a cancel
            await asyncio.sleep(interval)
            if self._pub is not None:
                start = loop.time()
                try:
                    await self.call("PING", timeout=self.timings.ping_timeout)
                    self.health.latency = loop.time() - start
                except (TimeoutError, LinkError) as exc:
                    log.debug("Redis %s: publisher ping failed: %r", self.node, exc)
            sub = self._sub
            if sub is not None:
                if loop.time() - self._last_sub_pong > interval + self.timings.ping_timeout:
                    log.warning("Redis %s: subscriber stopped answering; reconnecting", self.node)
                    self.force_resubscribe()
                    continue
                with contextlib.suppress(RedisError, OSError):
                    await sub.send_command("PING", check_health=False)

    def force_resubscribe(self) -> None:
        """Drop the subscriber connection; the reader reconnects and replays every channel."""
        sub = self._sub
        if sub is not None:
            with contextlib.suppress(Exception):
                transport = getattr(sub._writer, "transport", None)
                if transport is not None:
                    transport.abort()

    def _set_health(self, role: str, healthy: bool, event: str, error: str | None) -> None:
        current = self.health.publisher if role == "publisher" else self.health.subscriber
        if error is not None:
            self.health.last_error = error
        if current == healthy:
            return
        if role == "publisher":
            self.health.publisher = healthy
        else:
            self.health.subscriber = healthy
        self._on_health(self, role, healthy, event, error)
