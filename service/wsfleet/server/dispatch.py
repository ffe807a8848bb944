"""The node's side of every connection: admission, frames, events to handlers, system events.

:class:`Dispatcher` implements :class:`~wsfleet.server.ports.NodePort`, the interface the
transport calls. Client events and system events live in separate tables, so a client frame
``{"event": "close"}`` can never run a ``close`` handler (W11 of the original). This is the hot
path: it reads plain attributes and increments plain counters.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from types import CoroutineType, GeneratorType
from typing import Any, Final, TypeGuard

from wsfleet.latency import OTHER_EVENT, LatencyHistogram
from wsfleet.listeners import ListenerTable
from wsfleet.protocol.codec import ClientEvent
from wsfleet.protocol.codec import decode_client_frame as _decode
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.depth import too_deep
from wsfleet.protocol.errors import FrameError
from wsfleet.protocol.wsframe import build_pong_frame, build_text_frame
from wsfleet.server.errors import Refuse
from wsfleet.server.hub import Hub, now_ms
from wsfleet.server.origins import origin_allowed
from wsfleet.server.ports import EventTracing
from wsfleet.server.ratelimit import TokenBucket
from wsfleet.server.settings import RateLimitPolicy, ServerSettings
from wsfleet.server.socket import Acknowledge, Closer, Socket, UpgradeRequest
from wsfleet.server.state import DRAIN_CLOSE, NodeState
from wsfleet.server.stats import NodeStats
from wsfleet.server.system_events import SystemEvent
from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.server")

EventHandler = Callable[[Socket, Any, Acknowledge | None], Any]
SystemHandler = Callable[..., Any]
Authenticator = Callable[[UpgradeRequest], Awaitable[str | None] | str | None]

# System event names as plain module constants: ``SystemEvent.X.value`` goes through the enum's
# descriptors (~0.3 µs), and some of these are looked up for every frame.
CONNECTION: Final = SystemEvent.CONNECTION.value
CLOSE: Final = SystemEvent.CLOSE.value
ERROR: Final = SystemEvent.ERROR.value
PONG: Final = SystemEvent.PONG.value
MESSAGE: Final = SystemEvent.MESSAGE.value
CLIENT_PING: Final = SystemEvent.CLIENT_PING.value
LISTENING: Final = SystemEvent.LISTENING.value
SERVER_CLOSE: Final = SystemEvent.SERVER_CLOSE.value

_ids: Final = itertools.count(1)
ARRIVED: Final = "wsf_login_ms"


class Dispatcher:
    """Connections in, events to handlers. ``tasks`` owns the async system handlers."""

    def __init__(
        self,
        settings: ServerSettings,
        stats: NodeStats,
        hub: Hub,
        state: NodeState,
        authenticate: Authenticator | None = None,
    ) -> None:
        self.settings = settings  # also sets what the hot path reads of it (see the setter)
        self.stats = stats
        self.hub = hub
        self.state = state
        self.authenticate = authenticate
        self.events: ListenerTable[EventHandler] = ListenerTable()
        self.system: ListenerTable[SystemHandler] = ListenerTable()
        self.tracing: EventTracing | None = None
        self.tasks = TaskOwner("system handlers")
        self._per_ip: dict[str, int] = {}  # open connections per client address (when capped)

    @property
    def settings(self) -> ServerSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._heartbeat = settings.heartbeat
        self._heartbeat_frame = build_text_frame(settings.heartbeat.encode())
        self._depth = settings.max_json_depth
        self._max_inflight = settings.max_inflight_handlers

    # -- NodePort: what the transport calls -------------------------------------------------------

    async def admit(self, request: UpgradeRequest) -> str | None:
        if not self.state.accepting:
            raise Refuse(503, "Server is shutting down")
        request.extra[ARRIVED] = now_ms()  # the login's time, if authenticate gives an id
        if not origin_allowed(request.headers, self.settings.allowed_origins):
            raise Refuse(403, "Forbidden: origin not allowed")
        self._check_caps(request)
        result = None if self.authenticate is None else self.authenticate(request)
        if inspect.isawaitable(result):
            result = await result
            self._check_caps(request)  # others may have been admitted meanwhile
        if result is not None and not isinstance(result, str):
            raise TypeError(f"authenticate() must return a socket id (str) or None, got {result!r}")
        if self.hub.recovery is not None:
            return await self.hub.recovery.admit(request, result)
        return result

    def _check_caps(self, request: UpgradeRequest) -> None:
        settings = self.settings
        cap = settings.max_connections
        if cap is not None and self.hub.connection_count >= cap:
            raise Refuse(503, f"Server is full: {cap} connections")
        per_ip = settings.max_connections_per_ip
        if per_ip is not None and self._per_ip.get(_address(request), 0) >= per_ip:
            raise Refuse(429, f"Too many connections from this address (at most {per_ip})")

    def open(
        self,
        transport: asyncio.WriteTransport,
        closer: Closer,
        request: UpgradeRequest,
        socket_id: str | None,
    ) -> Socket:
        settings = self.settings
        socket = Socket(
            self.stats, transport, closer, request, next(_ids), settings.max_send_buffer
        )
        self.hub.add_connection(socket)
        if settings.max_connections_per_ip is not None:
            address = _address(request)
            self._per_ip[address] = self._per_ip.get(address, 0) + 1
        self.stats.connections_accepted += 1
        if settings.rate_limit_per_second is not None:
            socket.bucket = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        late_close = self.state.late_close
        if late_close is not None:  # admitted just before the drain or close began
            if late_close == DRAIN_CLOSE:
                self.stats.drained_connections += 1
            socket.close(*late_close)
            return socket
        arrived = request.extra.pop(ARRIVED, None)
        if socket_id is not None:
            self.hub.register(socket_id, socket, since=arrived if type(arrived) is int else None)
        elif settings.auth_timeout is not None:
            socket.start_auth_timer(settings.auth_timeout, self._auth_expired)
        return socket

    def _auth_expired(self, socket: Socket) -> None:
        if socket.id is None and socket.is_open:
            self.stats.auth_timeouts += 1
            socket.close(CloseCode.AUTH_TIMEOUT, "not authenticated in time")

    async def connected(self, socket: Socket) -> None:
        if self.hub.recovery is not None:
            await self.hub.recovery.connected(socket)
        await self.emit_system_async(CONNECTION, socket)

    def pong(self, socket: Socket, data: bytes) -> None:
        socket.alive = True
        if self.system.has(PONG):
            self.emit_system(PONG, socket, data)

    def ping(self, socket: Socket, data: bytes) -> None:
        socket.alive = True
        socket.send_frame(build_pong_frame(data))

    def frame(self, socket: Socket, data: str | bytes) -> bool:
        """Handle one data frame. Returns True when the caller must wait for a handler slot."""
        socket.alive = True
        stats = self.stats
        stats.frames_in += 1
        stats.bytes_in += len(data)
        bucket = socket.bucket
        if bucket is not None and not bucket.take(asyncio.get_running_loop().time()):
            stats.rate_limited += 1
            if self.settings.rate_limit_policy is RateLimitPolicy.CLOSE:
                socket.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
            return False
        try:
            frame = _decode(data, self._heartbeat)
            if type(frame) is ClientEvent and too_deep(data, frame.payload, self._depth):
                raise FrameError("depth", f"payload nested deeper than {self._depth} levels")
        except FrameError as exc:
            stats.malformed_frames[exc.reason] += 1
            if exc.reason == "depth":
                log.warning("dropped a frame from %r: JSON %s", socket, exc)
            else:
                log.debug("dropped malformed frame from %r: %s", socket, exc)
            return self.emit_message(socket, data)
        if not isinstance(frame, ClientEvent):
            stats.heartbeats += 1
            socket.send_frame(self._heartbeat_frame)
            if self.system.has(CLIENT_PING):
                self.emit_system(CLIENT_PING, socket)
            return self.emit_message(socket, data)
        if self.tracing is None:
            must_wait = self._handle(socket, frame, None)
        else:
            must_wait = self.dispatch(socket, frame)
        if self.system.has(MESSAGE):
            return self.emit_message(socket, data)
        return must_wait

    async def wait_for_slot(self, socket: Socket) -> None:
        await socket.wait_for_slot(self.settings.max_inflight_handlers)

    def failed(self, socket: Socket, exc: BaseException) -> None:
        self.emit_system(ERROR, socket, exc)

    async def closed(self, socket: Socket, code: int | None, reason: str) -> None:
        """The connection is gone: run ``close`` handlers, then forget the socket and its rooms."""
        socket.close_code = code
        socket.close_reason = reason
        self.stats.connections_closed[code if code is not None else CloseCode.ABNORMAL] += 1
        self.hub.discard_connection(socket)
        if self.settings.max_connections_per_ip is not None:
            address = _address(socket.request)
            left = self._per_ip.pop(address, 0) - 1
            if left > 0:
                self._per_ip[address] = left
        socket.detach()
        if self.hub.recovery is not None:
            self.hub.recovery.closed(socket)
        try:
            await self.emit_system_async(CLOSE, socket, code, reason)
        finally:
            self.hub.unregister(socket)
            await socket.cancel_handlers()

    # -- events -----------------------------------------------------------------------------------

    def emit_message(self, socket: Socket, data: str | bytes) -> bool:
        """Run the ``message`` handlers; async ones are the socket's in-flight handlers, as
        event handlers are. Returns True when the socket's handler slots are full."""
        listeners = self.system.take(MESSAGE)
        if listeners is None:
            return False
        for listener in listeners:
            try:
                result = listener.fn(socket, data)
            except Exception:
                log.exception("system handler for %r failed", MESSAGE)
                continue
            if _is_awaitable(result):
                task = asyncio.ensure_future(result)
                socket.track_handler(task)  # counted in max_inflight_handlers, owned by the socket
                task.add_done_callback(_log_message_failure)
        return socket.handlers_in_flight() >= self._max_inflight

    def dispatch(self, socket: Socket, frame: ClientEvent) -> bool:
        tracing = self.tracing
        if tracing is None:
            return self._handle(socket, frame, None)
        span, token = tracing.start_event(frame.event, socket.id)
        try:
            return self._handle(socket, frame, _SpanEnd(span))
        finally:
            tracing.detach(token)

    def _handle(self, socket: Socket, frame: ClientEvent, span: _SpanEnd | None) -> bool:
        stats = self.stats
        event = frame.event
        if frame.bad_callback_id:
            stats.bad_callback_ids += 1
            log.debug("event %r from %r has an invalid callbackId: no ack", event, socket)
        listeners = self.events.take(event)
        if listeners is None:
            stats.unknown_events += 1
            log.debug("no handler for event %r from %r", event, socket)
            if span is not None:
                span.finish()
            return False
        stats.events_handled += 1
        start = perf_counter()
        callback_id = frame.callback_id
        has_payload = frame.has_payload
        ack = (
            None
            if callback_id is None
            else Acknowledge(socket, callback_id, start, not has_payload)
        )
        histograms = stats.handler_seconds
        hist = histograms.get(event) or histograms.for_event(event)
        pending = 0
        payload = frame.payload
        for listener in listeners:
            try:
                result = listener.fn(socket, payload if has_payload else listener.missing, ack)
            except Exception:
                self._handler_failed(event)
                log.exception("handler for event %r failed", event)
                continue
            if result is None:
                continue
            if type(result) not in _PLAIN and _is_awaitable(result):
                pending += 1
                self._track(socket, event, result, ack, start, hist, span)
                continue
            if ack is not None:
                ack(result)
        if not pending:
            hist.observe(perf_counter() - start)
            if span is not None:
                span.finish()
        elif span is not None:
            span.pending = pending
        return socket.handlers_in_flight() >= self._max_inflight

    def _handler_failed(self, event: str) -> None:
        stats = self.stats
        stats.handler_errors += 1
        stats.handler_errors_by_event[event if event in stats.handler_seconds else OTHER_EVENT] += 1

    def _track(
        self,
        socket: Socket,
        event: str,
        awaitable: Awaitable[Any],
        ack: Acknowledge | None,
        start: float,
        hist: LatencyHistogram,
        span: _SpanEnd | None,
    ) -> None:
        task = asyncio.ensure_future(awaitable)
        socket.track_handler(task)  # owned by the socket: cancelled and awaited when it closes

        def done(t: asyncio.Future[Any]) -> None:
            try:
                if t.cancelled():
                    return
                hist.observe(perf_counter() - start)
                exc = t.exception()
                if exc is not None:
                    self._handler_failed(event)
                    log.error("handler for event %r failed", event, exc_info=exc)
                    return
                value = t.result()
                if value is not None and ack is not None:
                    ack(value)
            finally:
                if span is not None:
                    span.one_done()

        task.add_done_callback(done)

    def emit_system(self, event: str, *args: Any) -> None:
        """Run the handlers of a system event; async ones become tasks of :attr:`tasks`."""
        listeners = self.system.take(event)
        if listeners is None:
            return
        for listener in listeners:
            try:
                result = listener.fn(*args)
                if _is_awaitable(result):
                    self.tasks.spawn(result, f"wsfleet-system-{event}")
            except Exception:
                log.exception("system handler for %r failed", event)

    async def emit_system_async(self, event: str, *args: Any) -> None:
        """Run the handlers of a system event one after the other, awaiting async ones."""
        listeners = self.system.take(event)
        if listeners is None:
            return
        for listener in listeners:
            try:
                result = listener.fn(*args)
                if _is_awaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("system handler for %r failed", event)


def _address(request: UpgradeRequest) -> str:
    """The client's address without its port (``host:port``, ``[v6]:port`` or unknown)."""
    remote = request.remote or ""
    return remote.rpartition(":")[0] or remote


def _log_message_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("system handler for %r failed", MESSAGE, exc_info=task.exception())


class _SpanEnd:
    """Ends a client event's span once its last async handler finished."""

    __slots__ = ("pending", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.pending = 0

    def finish(self) -> None:
        self.span.end()

    def one_done(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.span.end()


_PLAIN: Final = frozenset({dict, list, str, int, float, bool, bytes, tuple})
"""Result types that are never awaitable (``hasattr`` on them raises and catches inside)."""


def _is_awaitable(value: object) -> TypeGuard[Awaitable[Any]]:
    """``inspect.isawaitable``, with fast paths for the usual handler results: its final
    ``isinstance(value, Awaitable)`` ABC check costs ~0.35 µs for a plain value such as a dict."""
    kind = type(value)
    if kind is CoroutineType:
        return True
    if kind in _PLAIN:  # the usual synchronous results (an echo's payload): no attribute lookup
        return False
    if hasattr(kind, "__await__"):  # what the Awaitable ABC checks, minus its overhead
        return True
    return isinstance(value, GeneratorType) and inspect.isawaitable(value)
