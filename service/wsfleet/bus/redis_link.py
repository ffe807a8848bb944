"""One Redis node: the only module of wsfleet that speaks RESP (through ``hiredis``).

A :class:`RedisLink` holds two connections, each a plain asyncio protocol whose replies are
parsed by ``hiredis`` inside ``data_received``, with no task switch per reply:

- The **publisher** runs every command submitted to it (PUBLISH, the socket directory's scripts,
  the registry's few commands). Commands submitted during one event-loop iteration are packed and
  written together at the start of the next one, without waiting for earlier replies (pipelined);
  replies are matched to commands in order. While the connection's write buffer is over its
  high-water mark, commands wait in the link's queue, where they can still be re-routed.
- The **subscriber** keeps the set of channels the bus wants, replays it after every reconnect,
  and hands each message to a synchronous callback as soon as it is parsed.

Failures never vanish: when the publisher's connection is lost, or commands wait longer than
``command_timeout`` without any reply, every command sent and not answered, and every queued one,
is handed back to the bus with :attr:`on_failed`, which re-routes them; the link reconnects with
capped exponential backoff and reports every health change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

import hiredis

from wsfleet.bus.nodes import RedisNode
from wsfleet.protocol.errors import WsfleetError

log = logging.getLogger("wsfleet.bus")

SUBSCRIBE_BATCH: Final = 512
CLIENT_NAME: Final = "wsfleet"
_MESSAGE: Final = b"message"
_SUBSCRIBE: Final = b"subscribe"
_UNSUBSCRIBE: Final = b"unsubscribe"


class LinkError(WsfleetError):
    """A command could not be run on a Redis node."""


def connect_error_text(node: RedisNode, exc: BaseException) -> str:
    """Why connecting to ``node`` failed, in words an operator can act on."""
    if isinstance(exc, socket.gaierror):
        return f"the host name {node.host!r} did not resolve ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {node.host}:{node.port} (is redis-server running there?)"
    if isinstance(exc, TimeoutError):
        return f"no connection to {node.host}:{node.port} within the connect timeout"
    return str(exc) or type(exc).__name__


def _pack_python(args: tuple[Any, ...]) -> bytes:
    """RESP encoding of one command (for hiredis releases without ``pack_command``)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


pack_command: Callable[[tuple[Any, ...]], bytes] = getattr(hiredis, "pack_command", _pack_python)


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


class _Connection(asyncio.Protocol):
    """One RESP connection. Replies go, in order, to the commands in :attr:`waiting`, or - once
    :attr:`on_push` is set (a subscriber) - all to that callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[Command] = deque()
        self.on_push: Callable[[Any], None] | None = None
        self.on_writable: Callable[[], None] | None = None
        self.progress_at = 0.0
        """Loop time of the last reply, or of the write that made :attr:`waiting` non-empty."""
        self.paused = False
        self.error: BaseException | None = None
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        push = self.on_push
        try:
            if push is not None:
                while (reply := reader.gets()) is not False:
                    push(reply)
                return
            waiting = self.waiting
            while (reply := reader.gets()) is not False:
                command = waiting.popleft()
                future = command.future
                if isinstance(reply, hiredis.ReplyError):
                    if future is None:
                        log.warning("Redis %s failed: %s", command.args[0], reply)
                    elif not future.done():
                        future.set_exception(LinkError(str(reply)))
                elif future is not None and not future.done():
                    future.set_result(reply)
            self.progress_at = self.loop.time()
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.fail(LinkError(f"protocol error: {exc!r}"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = exc or ConnectionResetError("connection closed by the Redis node")
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.on_writable is not None:
            self.on_writable()

    # -- use --------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.transport is not None and self.error is None

    def write(self, data: bytes) -> None:
        if self.transport is None:
            raise ConnectionResetError("not connected")
        self.transport.write(data)

    def send(self, commands: Iterable[Command]) -> None:
        """Write ``commands`` (packed together) and expect their replies in order. Raises
        before anything is written when a command cannot be encoded or the connection is gone."""
        batch = list(commands)
        data = b"".join([pack_command(c.args) for c in batch])
        self.write(data)
        if not self.waiting:
            self.progress_at = self.loop.time()
        self.waiting.extend(batch)

    async def request(self, *args: Any) -> Any:
        """One command and its reply (during the handshake)."""
        future: asyncio.Future[Any] = self.loop.create_future()
        self.send((Command(args, future),))
        await asyncio.wait((future, self.closed), return_when=asyncio.FIRST_COMPLETED)
        if not future.done():
            raise ConnectionResetError("connection lost during the handshake")
        return future.result()

    def fail(self, error: BaseException) -> None:
        """Drop the connection at once; :attr:`closed` resolves when it is gone."""
        if self.error is None:
            self.error = error
        transport = self.transport
        if transport is not None:
            transport.abort()
        elif not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.error is None:
            self.error = ConnectionResetError("closed")
        if self.transport is not None:
            self.transport.close()


async def _open(node: RedisNode, timings: LinkTimings) -> _Connection:
    """Connect and authenticate (``AUTH``, ``SELECT``, ``CLIENT SETNAME``)."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if node.tls else None
    conn: _Connection | None = None
    try:
        async with asyncio.timeout(timings.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: _Connection(loop), node.host, node.port, ssl=context
            )
            if node.password is not None:
                if node.username:
                    await conn.request("AUTH", node.username, node.password)
                else:
                    await conn.request("AUTH", node.password)
            if node.db:
                await conn.request("SELECT", node.db)
            await conn.request("CLIENT", "SETNAME", CLIENT_NAME)
    except BaseException:
        if conn is not None:
            conn.fail(ConnectionResetError("handshake failed"))
        raise
    if not conn.is_open:
        raise ConnectionResetError("connection closed during the handshake")
    return conn


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
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._desired: set[bytes] = set()
        self._requested: set[bytes] = set()
        self._confirmed: set[bytes] = set()
        self._sub_changed = asyncio.Event()
        self._confirm_waiters: list[tuple[frozenset[bytes], asyncio.Future[None]]] = []
        self._pub: _Connection | None = None
        self._sub: _Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._last_sub_pong = 0.0
        self._said: str | None = None  # the last connect failure logged
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
        self.batches = 0
        """Writes of the publisher (each carries every command submitted in one loop iteration)."""

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
        pub = self._pub
        return len(self._queue) + (len(pub.waiting) if pub is not None else 0)

    def __repr__(self) -> str:
        return f"<RedisLink {self.node}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        name = self.key
        self._tasks = [
            asyncio.create_task(self._publisher_loop(), name=f"wsfleet-redis-pub-{name}"),
            asyncio.create_task(self._subscriber_loop(), name=f"wsfleet-redis-sub-{name}"),
            asyncio.create_task(self._reconcile_loop(), name=f"wsfleet-redis-subs-{name}"),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-redis-ping-{name}"),
        ]

    async def aclose(self) -> None:
        """Stop; commands queued or not answered are handed back through ``on_failed``."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        leftover: list[Command] = []
        for conn in (self._pub, self._sub):
            if conn is not None:
                leftover.extend(conn.waiting)
                conn.waiting.clear()
                conn.close()
        self._pub = self._sub = None
        self._set_health("publisher", False, "close", None)
        self._set_health("subscriber", False, "close", None)
        leftover.extend(self._queue)
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
        if not self._flush_scheduled and self._pub is not None:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write everything queued in one packed batch (once per loop iteration)."""
        self._flush_scheduled = False
        conn = self._pub
        queue = self._queue
        if conn is None or not queue or conn.paused:
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
        self.batches += 1
        if was_idle and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(
                self.timings.command_timeout, self._check_progress
            )

    def _send_one_by_one(self, conn: _Connection, error: Exception) -> None:
        log.debug("Redis %s: unencodable command in a batch (%s)", self.node, error)
        queue = self._queue
        while queue:
            command = queue[0]
            try:
                conn.send((command,))
            except (TypeError, ValueError) as exc:
                future = command.future
                if future is not None and not future.done():
                    future.set_exception(LinkError(f"cannot send to {self.node}: {exc}"))
                else:
                    log.warning("dropped an unencodable command for %s: %s", self.node, exc)
            except (OSError, RuntimeError) as exc:
                self._publisher_failed(conn, exc)  # hands the queue back, this one included
                return
            queue.popleft()

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

    def _publisher_failed(self, conn: _Connection, error: BaseException) -> None:
        """Drop the publisher connection and hand every unanswered or queued command back."""
        if self._pub is not conn:
            return
        self._pub = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        log.warning("Redis %s publisher failed: %s", self.node, error)
        conn.fail(error)
        self._set_health("publisher", False, "error", str(error))
        unanswered = list(conn.waiting)
        conn.waiting.clear()
        if unanswered:
            self._on_failed(self, unanswered, error)
        self._fail_queued(error)

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

    async def _publisher_loop(self) -> None:
        backoff = self.timings.backoff_initial
        while not self._closed:  # also ends if a library swallowed a cancel
            try:
                conn = await _open(self.node, self.timings)
            except (OSError, TimeoutError, LinkError) as exc:
                error = connect_error_text(self.node, exc)
                if error != self._said:  # said once, not on every retry
                    self._said = error
                    log.warning("Redis %s: cannot connect: %s", self.node, error)
                self._set_health("publisher", False, "error", error)
                self._fail_queued(exc)
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            backoff = self.timings.backoff_initial
            self._said = None
            conn.on_writable = self._flush
            self._pub = conn
            self.publisher_connects += 1
            self._set_health("publisher", True, "connect", None)
            self._flush()
            try:
                await conn.closed
            except asyncio.CancelledError:
                conn.close()
                raise
            if self._pub is conn:  # lost by itself (not failed by the watchdog)
                self._publisher_failed(conn, conn.error or ConnectionResetError("lost"))

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

    async def _subscriber_loop(self) -> None:
        backoff = self.timings.backoff_initial
        loop = asyncio.get_running_loop()
        while not self._closed:  # also ends if a library swallowed a cancel
            try:
                conn = await _open(self.node, self.timings)
            except (OSError, TimeoutError, LinkError) as exc:
                self._set_health("subscriber", False, "error", connect_error_text(self.node, exc))
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            backoff = self.timings.backoff_initial
            conn.on_push = self._on_push
            self._sub = conn
            self._requested = set()
            self._confirmed = set()
            self._last_sub_pong = loop.time()
            self._sub_changed.set()
            self._set_health("subscriber", True, "connect", None)
            try:
                await conn.closed
            except asyncio.CancelledError:
                conn.close()
                raise
            finally:
                self._sub = None
                self._requested = set()
                self._confirmed = set()
            if not self._closed:
                error = conn.error
                log.warning("Redis %s subscriber failed: %s", self.node, error)
                self._set_health("subscriber", False, "error", str(error) or "connection lost")
            self.health.reconnects += 1

    def _on_push(self, reply: Any) -> None:
        """Everything the subscriber connection receives, parsed, in order."""
        if type(reply) is list and reply:
            kind = reply[0]
            if kind == _MESSAGE:
                try:
                    self._on_message(self, reply[1], reply[2])
                except Exception:
                    log.exception("bus message handler failed")
            elif kind == _SUBSCRIBE:
                self._confirmed.add(reply[1])
                self._resolve_waiters()
            elif kind == _UNSUBSCRIBE:
                self._confirmed.discard(reply[1])
            elif kind == b"pong":  # PING in subscribed mode
                self._last_sub_pong = asyncio.get_running_loop().time()
        elif reply == b"PONG":  # PING before the first subscription
            self._last_sub_pong = asyncio.get_running_loop().time()
        elif isinstance(reply, hiredis.ReplyError):
            log.warning("Redis %s subscriber: %s", self.node, reply)

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
        while not self._closed:  # also ends if a library swallowed a cancel
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
                    conn.write(pack_command(("SUBSCRIBE", *chunk)))
                    self._requested.update(chunk)
                for i in range(0, len(to_drop), SUBSCRIBE_BATCH):
                    chunk = to_drop[i : i + SUBSCRIBE_BATCH]
                    conn.write(pack_command(("UNSUBSCRIBE", *chunk)))
                    self._requested.difference_update(chunk)
            except (OSError, RuntimeError) as exc:
                log.debug(
                    "Redis %s: subscription change failed (%s); retried on reconnect",
                    self.node,
                    exc,
                )

    # -- health ------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.timings.ping_interval
        ping = pack_command(("PING",))
        while not self._closed:  # also ends if a library swallowed a cancel
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
                with contextlib.suppress(OSError, RuntimeError):
                    sub.write(ping)

    def force_resubscribe(self) -> None:
        """Drop the subscriber connection; the subscriber reconnects and replays every channel."""
        sub = self._sub
        if sub is not None:
            sub.fail(ConnectionResetError("resubscribing"))

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
