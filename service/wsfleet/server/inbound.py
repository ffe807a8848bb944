"""The transport's side of a node: admitting upgrades, reading frames, dispatching events to
handlers (the hot path), closing, and system events."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from time import perf_counter
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, TypeGuard

from wsfleet.latency import OTHER_EVENT, LatencyHistogram
from wsfleet.protocol.codec import (
    ClientEvent,
)
from wsfleet.protocol.codec import decode_client_frame as _decode
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.errors import FrameError
from wsfleet.protocol.wsframe import build_pong_frame
from wsfleet.server.origins import origin_allowed
from wsfleet.server.ratelimit import TokenBucket
from wsfleet.server.settings import RateLimitPolicy
from wsfleet.server.socket import Acknowledge, Closer, Socket, UpgradeRequest

if TYPE_CHECKING:
    pass


from wsfleet.server.core import (
    _CLIENT_PING,
    _CLOSE,
    _CONNECTION,
    _ERROR,
    _MESSAGE,
    _PONG,
    Refuse,
    ServerCore,
    _ids,
)

log = logging.getLogger("wsfleet.server")


class ConnectionHandling(ServerCore):
    # -- the transport's side ----------------------------------------------------------------

    async def _admit(self, request: UpgradeRequest) -> str | None:
        """Run the authenticate hook; raises :class:`Refuse`."""
        if not self._accepting:
            raise Refuse(503, "Server is shutting down")
        if not origin_allowed(request.headers, self.settings.allowed_origins):
            raise Refuse(403, "Forbidden: origin not allowed")
        if self._authenticate is None:
            return None
        result = self._authenticate(request)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, str):
            raise TypeError(f"authenticate() must return a socket id (str) or None, got {result!r}")
        return result

    def _open(
        self,
        transport: asyncio.WriteTransport,
        closer: Closer,
        request: UpgradeRequest,
        socket_id: str | None,
    ) -> Socket:
        socket = Socket(self, transport, closer, request, next(_ids), self.settings.max_send_buffer)
        self._connections.add(socket)
        self.stats.connections_accepted += 1
        if self.settings.rate_limit_per_second is not None:
            socket.bucket = TokenBucket(
                self.settings.rate_limit_per_second, self.settings.rate_limit_burst
            )
        if self._draining:  # admitted just before the drain began: it reconnects elsewhere
            self.stats.drained_connections += 1
            socket.close(CloseCode.SERVICE_RESTART, "server restarting: reconnect")
            return socket
        if socket_id is not None:
            self.set_user_socket(socket_id, socket)
        elif self.settings.auth_timeout is not None:
            socket._auth_timer = asyncio.get_running_loop().call_later(
                self.settings.auth_timeout, self._auth_expired, socket
            )
        return socket

    def _auth_expired(self, socket: Socket) -> None:
        socket._auth_timer = None
        if socket.id is None and socket.is_open:
            self.stats.auth_timeouts += 1
            socket.close(CloseCode.AUTH_TIMEOUT, "not authenticated in time")

    async def _connected(self, socket: Socket) -> None:
        await self._emit_system_async(_CONNECTION, socket)

    def _on_pong(self, socket: Socket, data: bytes) -> None:
        socket.alive = True
        if self._system.has(_PONG):
            self._emit_system(_PONG, socket, data)

    def _on_ping(self, socket: Socket, data: bytes) -> None:
        socket.alive = True
        socket.send_frame(build_pong_frame(data))

    def _on_frame(self, socket: Socket, data: str | bytes) -> bool:
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
        except FrameError as exc:
            stats.malformed_frames[exc.reason] += 1
            log.debug("dropped malformed frame from %r: %s", socket, exc)
            self._emit_message(socket, data)
            return False
        if not isinstance(frame, ClientEvent):
            stats.heartbeats += 1
            socket.send_frame(self._heartbeat_frame)
            if self._system.has(_CLIENT_PING):
                self._emit_system(_CLIENT_PING, socket)
            self._emit_message(socket, data)
            return False
        must_wait = self._dispatch(socket, frame)
        self._emit_message(socket, data)
        return must_wait

    def _emit_message(self, socket: Socket, data: str | bytes) -> None:
        if self._system.has(_MESSAGE):
            self._emit_system(_MESSAGE, socket, data)

    def _dispatch(self, socket: Socket, frame: ClientEvent) -> bool:
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
        if frame.bad_callback_id:
            stats.bad_callback_ids += 1
            log.debug("event %r from %r has an invalid callbackId: no ack", frame.event, socket)
        listeners = self._events.take(frame.event)
        if listeners is None:
            stats.unknown_events += 1
            log.debug("no handler for event %r from %r", frame.event, socket)
            if span is not None:
                span.finish()
            return False
        stats.events_handled += 1
        start = perf_counter()
        if frame.callback_id is None:
            ack = None
        elif frame.has_payload:
            ack = Acknowledge(socket, frame.callback_id, start)
        else:
            ack = Acknowledge(socket, frame.callback_id, start, no_payload=True)
        hist = stats.handler_seconds.for_event(frame.event)
        pending = 0
        has_payload = frame.has_payload
        for listener in listeners:
            try:
                payload = frame.payload if has_payload else listener.missing
                result = listener.fn(socket, payload, ack)
            except Exception:
                self._handler_failed(frame.event)
                log.exception("handler for event %r failed", frame.event)
                continue
            if result is None:
                continue
            if _is_awaitable(result):
                pending += 1
                self._track(socket, frame.event, result, ack, start, hist, span)
                continue
            if ack is not None:
                ack(result)
        if not pending:
            hist.observe(perf_counter() - start)
            if span is not None:
                span.finish()
        elif span is not None:
            span.pending = pending
        inflight = socket._inflight
        return inflight is not None and len(inflight) >= self.settings.max_inflight_handlers

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
        if socket._inflight is None:
            socket._inflight = set()
        inflight = socket._inflight
        inflight.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            inflight.discard(t)
            if socket._slot_free is not None:
                socket._slot_free.set()
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

    async def _wait_for_slot(self, socket: Socket) -> None:
        limit = self.settings.max_inflight_handlers
        while socket._inflight is not None and len(socket._inflight) >= limit:
            if socket._slot_free is None:
                socket._slot_free = asyncio.Event()
            socket._slot_free.clear()
            await socket._slot_free.wait()

    async def _closed(self, socket: Socket, code: int | None, reason: str) -> None:
        """The connection is gone: run ``close`` handlers, then forget the socket and its rooms."""
        socket.close_code = code
        socket.close_reason = reason
        self.stats.connections_closed[code if code is not None else CloseCode.ABNORMAL] += 1
        self._connections.discard(socket)
        if not self._connections and self._all_gone is not None:
            self._all_gone.set()
        socket._detach()
        try:
            await self._emit_system_async(_CLOSE, socket, code, reason)
        finally:
            self._unregister(socket)
            for task in list(socket._inflight or ()):
                task.cancel()

    def _emit_error(self, socket: Socket, exc: BaseException) -> None:
        self._emit_system(_ERROR, socket, exc)

    def _emit_system(self, event: str, *args: Any) -> None:
        listeners = self._system.take(event)
        if listeners is None:
            return
        for listener in listeners:
            try:
                result = listener.fn(*args)
                if _is_awaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(_log_task_failure)
            except Exception:
                log.exception("system handler for %r failed", event)

    async def _emit_system_async(self, event: str, *args: Any) -> None:
        listeners = self._system.take(event)
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


def _is_awaitable(value: object) -> TypeGuard[Awaitable[Any]]:
    """``inspect.isawaitable``, with fast paths for the usual handler results: its final
    ``isinstance(value, Awaitable)`` ABC check costs ~0.35 µs for a plain value such as a dict."""
    if type(value) is CoroutineType:
        return True
    if hasattr(type(value), "__await__"):  # what the Awaitable ABC checks, minus its overhead
        return True
    return isinstance(value, GeneratorType) and inspect.isawaitable(value)


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("system handler failed", exc_info=task.exception())
