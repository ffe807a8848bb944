"""``Supervisor``: the life cycle of the connector's connection, behind :class:`Connector`.

One **supervisor** task owns it: connect, run the connection, decide, wait the reconnect delay,
connect again, until ``close()``. While a connection is open, a reader task decodes frames and a
writer task drains the bounded send queue; heartbeat, ack and reconnect timers run on the
injected :class:`~wsfleet.client.clock.Clock`.

Every end of a connection goes through one future (``_drop``): the first reason wins (server
close, transport error, pong timeout, ``reconnect()``, ``close()``), then the supervisor stops
the heartbeat, fails the pending acks at once, fires ``error`` or ``close`` as that reason
requires, and decides: reconnect on the schedule (the reconnect policy decides after a close),
or stop until ``reconnect()``.

Outside calls (``reconnect``, ``close``) never await: they resolve ``_drop``, cancel the
connection attempt or wake the waiting supervisor (``_waker``), and the supervisor acts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

from wsfleet.client.acks import PendingAcks
from wsfleet.client.backoff import ReconnectSchedule
from wsfleet.client.clock import Clock, wait_with_timeout
from wsfleet.client.dispatch import Dispatcher
from wsfleet.client.errors import (
    ConnectionClosedError,
    ConnectorError,
    HandshakeError,
    NotConnectedError,
    ReconnectAbortedError,
    SendQueueFullError,
    TransportError,
)
from wsfleet.client.events import ReconnectInfo
from wsfleet.client.heartbeat import Heartbeat
from wsfleet.client.recovery import EVENT as RECOVERY_EVENT
from wsfleet.client.recovery import RecoveryState
from wsfleet.client.settings import ConnectorSettings, reconnect_allowed
from wsfleet.client.status import ConnectorState, ConnectorStats
from wsfleet.client.transport import (
    IncomingBinary,
    IncomingText,
    Link,
    LinkFailed,
    RemoteClosed,
    Transport,
)
from wsfleet.protocol.codec import MISSING, Ack, PushedEvent, decode_server_frame
from wsfleet.protocol.codec import Heartbeat as HeartbeatFrame
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.errors import FrameError

__all__ = ["Supervisor"]

log = logging.getLogger("wsfleet.client")

MANUAL_CLOSE: Final = (int(CloseCode.CLIENT_MANUAL_CLOSE), "client manual close")


@dataclass(frozen=True, slots=True)
class _Drop:
    """Why a connection ends and what the supervisor must do about it."""

    code: int | None
    reason: str = ""
    by_client: bool = False  # the client sends the close frame with ``code``
    emit_close: bool = True
    error: ConnectorError | None = None  # fire ``error`` with it (no ``close``)
    reconnect: bool | None = None  # None: ``reconnect_on_close`` decides from ``code``


class Supervisor:
    """The connection's state machine. Owned by one :class:`~wsfleet.client.Connector`."""

    def __init__(
        self,
        settings: ConnectorSettings,
        *,
        clock: Clock,
        transport: Transport,
        dispatcher: Dispatcher,
        stats: ConnectorStats,
    ) -> None:
        self._settings = settings
        self.recovery = RecoveryState() if settings.recover else None
        self._clock = clock
        self._transport = transport
        self._dispatcher = dispatcher
        self._stats = stats
        self.acks = PendingAcks(
            clock,
            limit=settings.max_pending_acks,
            invoke=lambda fn: dispatcher.invoke(fn, what="on_pending"),
        )
        self.schedule = ReconnectSchedule(
            threshold=settings.fast_reconnect_threshold,
            fast_interval=settings.fast_reconnect_interval,
            max_interval=settings.reconnect_max_interval,
            limit=settings.repeat_limit,
        )
        self.heartbeat = Heartbeat(
            clock,
            interval=settings.ping_interval,
            pong_timeout=settings.pong_timeout,
            on_ping=self._on_ping,
            on_pong=self._on_pong,
            on_timeout=self._on_pong_timeout,
        )
        self.latency: float | None = None
        self._state = ConnectorState.NEW
        self._final = False
        self._task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[Link] | None = None
        self._link: Link | None = None
        self._outbox: asyncio.Queue[bytes] | None = None
        self._drop: asyncio.Future[_Drop] | None = None
        self._waker: asyncio.Future[bool] | None = None
        self._request: bool | None = None  # reconnect() asked; True: reset the attempt counter
        self._open_waiters: set[asyncio.Future[None]] = set()
        self._stopped: ReconnectAbortedError | None = None

    # ------------------------------------------------------------------ for the connector

    @property
    def state(self) -> ConnectorState:
        return self._state

    def is_open(self) -> bool:
        return self._outbox is not None and self._drop is not None and not self._drop.done()

    def is_closed(self) -> bool:
        return self._final

    def start(self) -> None:
        if self._final:
            raise RuntimeError("this Connector was closed; create a new one")
        if self._task is None:
            self._state = ConnectorState.CONNECTING
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name="wsfleet-client-supervisor"
            )

    async def wait_open(self, timeout: float | None) -> None:
        if self._state is ConnectorState.NEW:
            raise RuntimeError("call connect() first")
        if self.is_open():
            return
        if self._final:
            raise ReconnectAbortedError("the connector is closed")
        if self._state is ConnectorState.STOPPED and self._stopped is not None:
            raise self._stopped
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._open_waiters.add(future)
        try:
            await wait_with_timeout(self._clock, future, timeout)
        finally:
            self._open_waiters.discard(future)

    def reconnect(self, repeat_reset: bool) -> None:
        if self._final or self._task is None:
            return
        self._request = bool(self._request) or repeat_reset
        if self._connect_task is not None:
            self._connect_task.cancel()
        self._end(_Drop(*MANUAL_CLOSE, by_client=True, emit_close=False, reconnect=True))
        self._wake(True)

    def close(self) -> None:
        if self._final:
            return
        self._final = True
        self._state = ConnectorState.CLOSED
        if self._connect_task is not None:
            self._connect_task.cancel()
        self._end(_Drop(*MANUAL_CLOSE, by_client=True, reconnect=False))
        self._wake(True)
        if self._task is None:
            self._finish()

    async def wait_closed(self) -> None:
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait((task,))

    def can_send(self) -> ConnectorError | None:
        """Why a frame cannot be queued now, or ``None``."""
        outbox = self._outbox
        if outbox is None or not self.is_open():
            return NotConnectedError()
        if outbox.full():
            return SendQueueFullError(self._settings.send_queue_size)
        return None

    def send(self, frame: bytes) -> ConnectorError | None:
        """Queue a text frame for the writer; returns why it was not queued, or ``None``."""
        error = self.can_send()
        if error is None and self._outbox is not None:
            self._outbox.put_nowait(frame)
        return error

    # ------------------------------------------------------------------ the supervisor task

    async def _supervise(self) -> None:
        try:
            while not self._is_final():
                reconnect, code = await self._run_connection()
                if self._is_final():
                    break
                if not reconnect and not await self._idle(
                    ReconnectAbortedError(f"closed with code {code}; not reconnecting", code)
                ):
                    break
                if not await self._backoff():
                    break
        except Exception:
            log.exception("the connector's supervisor failed; the connector is closed")
        finally:
            self._final = True
            self._state = ConnectorState.CLOSED
            self._finish()

    def _finish(self) -> None:
        self.heartbeat.stop()
        self.acks.fail_all(lambda cid: ConnectionClosedError(*MANUAL_CLOSE, callback_id=cid))
        self._fail_open_waiters(ReconnectAbortedError("the connector is closed"))
        self._dispatcher.end()

    async def _run_connection(self) -> tuple[bool, int | None]:
        """Connect and run one connection; returns (reconnect?, last close code)."""
        self._set_state(ConnectorState.CONNECTING)
        url = self._settings.connect_url()
        if self.recovery is not None:
            url = self.recovery.url(url)
        task = asyncio.get_running_loop().create_task(
            self._transport.open(url, connect_timeout=self._settings.connect_timeout),
            name="wsfleet-client-connect",
        )
        self._connect_task = task
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            self._connect_task = None
        if task.cancelled():  # reconnect() or manual_close() during the handshake
            return True, None
        error = task.exception()
        if error is not None:
            self._stats.connect_failures += 1
            if not isinstance(error, ConnectorError):
                wrapped = HandshakeError(f"cannot connect: {error!r}")
                wrapped.__cause__ = error
                error = wrapped
            self._set_state(ConnectorState.DISCONNECTED)
            self._dispatcher.emit_system("error", error)
            return True, None
        link = task.result()
        if self._final or self._request is not None:
            self._dispatcher.spawn(link.close(*MANUAL_CLOSE), name="wsfleet-client-close")
            return True, None
        return await self._run_open(link)

    async def _run_open(self, link: Link) -> tuple[bool, int | None]:
        loop = asyncio.get_running_loop()
        drop_future: asyncio.Future[_Drop] = loop.create_future()
        outbox: asyncio.Queue[bytes] = asyncio.Queue(self._settings.send_queue_size)
        self._link, self._drop, self._outbox = link, drop_future, outbox
        self.schedule.reset()
        self._stopped = None
        self._stats.opens += 1
        spawn = self._dispatcher.spawn
        reader = spawn(self._read_loop(link, drop_future), name="wsfleet-client-reader")
        writer = spawn(self._write_loop(link, outbox, drop_future), name="wsfleet-client-writer")
        self._set_state(ConnectorState.OPEN)
        self.heartbeat.start()
        for waiter in self._open_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._dispatcher.emit_system("open")
        drop = _Drop(CloseCode.GOING_AWAY, "client going away", by_client=True)
        try:
            drop = await drop_future
        finally:
            self.heartbeat.stop()
            self._link = self._drop = self._outbox = None
            self._set_state(ConnectorState.DISCONNECTED)
            reader.cancel()
            writer.cancel()
            close_code = drop.code if drop.by_client and drop.code else CloseCode.NORMAL
            spawn(link.close(int(close_code), drop.reason), name="wsfleet-client-close")
        await asyncio.wait((reader, writer))
        self.acks.fail_all(lambda cid: ConnectionClosedError(drop.code, drop.reason, cid))
        if drop.error is not None:
            self._dispatcher.emit_system("error", drop.error)
        elif drop.emit_close:
            self._dispatcher.emit_system("close", drop.code, drop.reason)
        if self._final:
            return False, drop.code
        if self._request is not None or drop.reconnect:
            return True, drop.code
        if drop.reconnect is False:
            return False, drop.code
        return reconnect_allowed(self._settings.reconnect_on_close, drop.code), drop.code

    async def _idle(self, reason: ReconnectAbortedError) -> bool:
        """Stop reconnecting until ``reconnect()``; False if the connector was closed."""
        self._set_state(ConnectorState.STOPPED)
        self._stopped = reason
        self._fail_open_waiters(reason)
        await self._arm_waker(None)
        return not self._final

    async def _backoff(self) -> bool:
        """Wait for the next attempt on the schedule; False if the connector was closed."""
        while True:
            if self._request is not None:
                if self._request:
                    self.schedule.reset()
                self._request = None
            delay = self.schedule.next_delay()
            if delay is None:
                limit = self.schedule.limit
                reason = ReconnectAbortedError(f"reconnect limit reached ({limit} attempts)")
                self._set_state(ConnectorState.STOPPED)
                self._stopped = reason
                self._fail_open_waiters(reason)
                waker = self._arm_waker(None)
                self._dispatcher.emit_system("repeat-limit", limit)
                await waker
                if self._final:
                    return False
                continue
            self._set_state(ConnectorState.WAITING)
            waker = self._arm_waker(delay)
            self._dispatcher.emit_system("reconnect", ReconnectInfo(self.schedule.repeat, delay))
            kicked = await waker
            if self._final:
                return False
            if not kicked:
                return True
            self.schedule.undo()  # replaced by the reconnect() call: reschedule, never doubled

    def _is_final(self) -> bool:
        return self._final  # a method: mypy must not narrow the flag across awaits

    def _set_state(self, state: ConnectorState) -> None:
        if not self._final:  # CLOSED is final
            self._state = state

    def _arm_waker(self, delay: float | None) -> asyncio.Future[bool]:
        """A future resolved with False after ``delay`` (if given) or True by ``_wake``."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waker = future
        if delay is not None:
            timer = self._clock.call_later(delay, lambda: _resolve(future, False))
            future.add_done_callback(lambda _: timer.cancel())
        if self._final or self._request is not None:
            future.set_result(True)
        return future

    def _wake(self, kicked: bool) -> None:
        if self._waker is not None:
            _resolve(self._waker, kicked)

    def _end(self, drop: _Drop) -> None:
        if self._drop is not None:
            _resolve(self._drop, drop)

    def _fail_open_waiters(self, error: ReconnectAbortedError) -> None:
        for waiter in self._open_waiters:
            if not waiter.done():
                waiter.set_exception(error)

    # ------------------------------------------------------------------ one connection

    async def _read_loop(self, link: Link, drop: asyncio.Future[_Drop]) -> None:
        while not drop.done():
            try:
                incoming = await link.receive()
            except Exception as exc:  # a transport must not raise; be safe anyway
                error = TransportError(f"receive failed: {exc!r}")
                error.__cause__ = exc
                _resolve(drop, _Drop(None, error=error, reconnect=True))
                return
            match incoming:
                case IncomingText(data):
                    self._on_text(data)
                case IncomingBinary(data):
                    self._stats.binary_frames += 1
                    self._dispatcher.emit_system("message", data)
                case RemoteClosed(code, reason):
                    _resolve(drop, _Drop(code, reason))
                    return
                case LinkFailed(failure):
                    if not isinstance(failure, ConnectorError):
                        failure = TransportError(f"connection failed: {failure!r}")
                    _resolve(drop, _Drop(None, error=failure, reconnect=True))
                    return

    async def _write_loop(
        self, link: Link, outbox: asyncio.Queue[bytes], drop: asyncio.Future[_Drop]
    ) -> None:
        while True:
            frame = await outbox.get()
            try:
                await link.send_text(frame)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, ConnectorError)
                    else TransportError(f"send failed: {exc!r}")
                )
                _resolve(drop, _Drop(None, error=error, reconnect=True))
                return

    def _on_text(self, data: str) -> None:
        self._stats.frames_received += 1
        if self.recovery is not None and self.recovery.observe(data):
            return  # stored twice by a retried append: received already
        self._dispatcher.emit_system("message", data)
        try:
            frame = decode_server_frame(data, self._settings.ping_msg)
        except FrameError as exc:
            self._stats.malformed_frames += 1
            log.debug("ignoring a malformed frame: %s", exc)
            return
        match frame:
            case HeartbeatFrame():
                self.heartbeat.pong_received()
            case Ack(callback_id, payload):
                if not self.acks.resolve(callback_id, None if payload is MISSING else payload):
                    self._stats.unknown_acks += 1
            case PushedEvent(event, payload):
                if self.recovery is not None and event == RECOVERY_EVENT:
                    info = self.recovery.on_event(payload)
                    if info is not None:
                        self._dispatcher.emit_system("recovery", info)
                    return
                self._dispatcher.emit_server(event, payload)

    def _on_ping(self) -> None:
        self._dispatcher.emit_system("ping")
        if self.is_open():
            self.send(self._settings.ping_msg.encode())

    def _on_pong(self, latency_ms: float) -> None:
        self.latency = latency_ms
        self._dispatcher.emit_system("pong", latency_ms)

    def _on_pong_timeout(self) -> None:
        self._dispatcher.emit_system("pong-timeout")
        self._end(_Drop(int(CloseCode.PONG_TIMEOUT), "pong timeout", by_client=True))


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
