"""``Connector``: the Python twin of the original ``WebSocketConnector`` (spec §3).

This module is the public face: settings, listeners, the three emit styles, event streams and
the life-cycle calls. The connection itself (connect, heartbeat, reconnect schedule, close
policy) is run by :class:`~wsfleet.client.supervisor.Supervisor`.

Differences from the original, on purpose (spec §7 W17): pending acks fail at once on close;
heartbeat timers stop with the connection; ``reconnect()`` during a scheduled reconnect
reschedules instead of being ignored; ``manual_close()`` fires ``close``; closes are followed by
a reconnect unless the code is terminal (``reconnect_on_close``); a bad URL keeps retrying;
``connect()`` is explicit (the original connected in its constructor).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from wsfleet.client._transport import AiohttpTransport
from wsfleet.client.acks import Settle
from wsfleet.client.clock import Clock, LoopClock, wait_with_timeout
from wsfleet.client.errors import ConnectorError
from wsfleet.client.listening import ListenerApi
from wsfleet.client.results import EmitCallback, EmitResult
from wsfleet.client.settings import ConnectorSettings, _check_positive
from wsfleet.client.status import ConnectorState, ConnectorStats
from wsfleet.client.streams import EventStream
from wsfleet.client.supervisor import Supervisor
from wsfleet.client.transport import Transport
from wsfleet.protocol.codec import encode_client_event

__all__ = ["Connector"]

_CALLBACK_TIMEOUT_TEXT: Final = "Is callback timeout: "
_PROMISE_TIMEOUT_TEXT: Final = "Is promise callback timeout: "


class Connector(ListenerApi):
    """A WebSocket client with heartbeat, acks and automatic reconnect.

    ``Connector(url, **options)`` or ``Connector(settings)`` (options then override fields of
    the settings); options are the fields of :class:`ConnectorSettings`. Nothing happens until
    ``await connect()`` (or ``async with``); then the connector connects and keeps reconnecting
    until ``manual_close()`` / ``aclose()``. ``clock`` and ``transport`` are for tests.
    """

    def __init__(
        self,
        settings: ConnectorSettings | str | None = None,
        /,
        *,
        clock: Clock | None = None,
        transport: Transport | None = None,
        **options: Any,
    ) -> None:
        if isinstance(settings, ConnectorSettings):
            self._settings = dataclasses.replace(settings, **options) if options else settings
        elif isinstance(settings, str):
            self._settings = ConnectorSettings(url=settings, **options)
        elif settings is None:
            self._settings = ConnectorSettings(**options)
        else:
            raise TypeError("Connector() takes a URL string or a ConnectorSettings")
        super().__init__()
        self._clock: Clock = clock or LoopClock()
        self._transport: Transport = transport or AiohttpTransport(
            max_frame_bytes=self._settings.max_frame_bytes,
            close_timeout=self._settings.close_timeout,
            compress=self._settings.compress,
        )
        self._stats = ConnectorStats()
        self._sup = Supervisor(
            self._settings,
            clock=self._clock,
            transport=self._transport,
            dispatcher=self._dispatcher,
            stats=self._stats,
        )

    # ------------------------------------------------------------------ properties

    @property
    def settings(self) -> ConnectorSettings:
        return self._settings

    @property
    def state(self) -> ConnectorState:
        return self._sup.state

    @property
    def is_open(self) -> bool:
        """True while the WebSocket is open and emits are sent."""
        return self._sup.is_open()

    @property
    def reconnecting(self) -> bool:
        """True while reconnect attempts are counted (the original ``reconnecting()``)."""
        return self._sup.schedule.repeat > 0

    @property
    def repeat(self) -> int:
        """Reconnect attempts since the last successful open."""
        return self._sup.schedule.repeat

    @property
    def ping_interval(self) -> float:
        """Seconds between a heartbeat reply (or the open) and the next ping."""
        return self._sup.heartbeat.interval

    @property
    def latency(self) -> float | None:
        """The last heartbeat round trip in milliseconds (``None`` before the first reply)."""
        return self._sup.latency

    @property
    def recovery_session(self) -> str | None:
        """With ``recover=True``: the session token, once the server gave one (from then on a
        reconnect can recover); ``None`` otherwise."""
        recovery = self._sup.recovery
        return None if recovery is None else recovery.session

    @property
    def stats(self) -> ConnectorStats:
        self._stats.events_dropped = self._dispatcher.events_dropped
        return self._stats

    @property
    def pending_acks(self) -> int:
        return len(self._sup.acks)

    # ------------------------------------------------------------------ life cycle

    async def connect(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_open`).

        Calling it again is harmless. Raises ``RuntimeError`` after ``manual_close()``.
        """
        self._sup.start()

    async def wait_open(self, timeout: float | None = None) -> None:
        """Return once the WebSocket is open (at once if it is).

        Raises ``TimeoutError`` after ``timeout`` seconds, and ``ReconnectAbortedError`` if the
        connector stops trying (closed, ``repeat_limit`` reached, terminal close code).
        """
        await self._sup.wait_open(timeout)

    def reconnect(self, repeat_reset: bool = False) -> None:
        """Drop the current connection (close 4001, no ``close`` event) and reconnect on the
        schedule. During a scheduled reconnect, the attempt is rescheduled (never doubled).
        ``repeat_reset`` restarts the schedule at attempt 1. No effect after ``manual_close()``.
        """
        self._sup.reconnect(repeat_reset)

    def manual_close(self) -> None:
        """Close with 4001 for good: no more reconnects, pending acks fail, streams end.

        A ``close`` event (4001, "client manual close") follows if the socket was open.
        Use :meth:`aclose` to also wait until everything has stopped.
        """
        self._sup.close()

    async def aclose(self) -> None:
        """``manual_close()``, then wait until everything has stopped.

        Async listeners and callbacks still running get ``close_timeout`` seconds to finish and
        are then cancelled; the transport (aiohttp session) is closed last.
        """
        self.manual_close()
        await self._sup.wait_closed()
        await self._dispatcher.drain(grace=self._settings.close_timeout)
        await self._transport.aclose()

    async def __aenter__(self) -> Connector:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def set_ping_interval(self, seconds: float, immediate: bool = False) -> None:
        """Change the heartbeat interval; with ``immediate``, a waiting ping restarts now."""
        _check_positive("ping interval", seconds)
        self._sup.heartbeat.set_interval(float(seconds), immediate=immediate)

    # ------------------------------------------------------------------ sending

    def emit(
        self,
        event: str,
        data: Any,
        callback: EmitCallback | None = None,
        *,
        callback_timeout: float | None = None,
        on_pending: Callable[[], object] | None = None,
        pending_timeout: float | None = None,
    ) -> bool:
        """Send ``{"event", "payload"}``; returns whether the frame was queued for sending.

        With ``callback``, a ``callbackId`` is added and ``callback(None, data)`` runs on the ack,
        or ``callback({"error", "errorCode"}, None)`` on failure: ``WS_NOT_OPEN`` (called at
        once), ``CALLBACK_TIMEOUT`` after ``callback_timeout`` seconds, ``WS_CLOSED`` as soon
        as the connection ends, ``TOO_MANY_PENDING_ACKS``, ``SEND_QUEUE_FULL``.
        ``on_pending()`` runs once after ``pending_timeout`` seconds without an ack, if that is
        shorter than the ack timeout. Raises ``TypeError`` for an empty event name, a ``None``
        payload or a payload that is not JSON-serializable.
        """
        _check_event(event)
        _check_payload(data)
        if callback is None:
            if not self.is_open:
                return False
            return self._sup.send(encode_client_event(event, data)) is None
        timeout, pending = self._timeouts(callback_timeout, pending_timeout)
        cb = callback

        def settle(error: ConnectorError | None, payload: Any) -> None:
            args = (None, payload) if error is None else (error.to_dict(), None)
            self._dispatcher.invoke(cb, *args, what="emit callback")

        sent = self._request_ack(
            event, data, settle, timeout, _CALLBACK_TIMEOUT_TEXT, on_pending, pending
        )
        return sent is not None

    async def emit_with_ack(
        self,
        event: str,
        data: Any,
        *,
        timeout: float | None = None,
        on_pending: Callable[[], object] | None = None,
        pending_timeout: float | None = None,
    ) -> Any:
        """Send an event and return the ack's payload (``None`` if the ack had none).

        Raises ``NotConnectedError``, ``AckTimeoutError`` (also a ``TimeoutError``),
        ``ConnectionClosedError``, ``TooManyPendingAcksError`` or ``SendQueueFullError``.
        """
        _check_event(event)
        _check_payload(data)
        ack_timeout, pending = self._timeouts(timeout, pending_timeout)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(error: ConnectorError | None, payload: Any) -> None:
            if not future.done():
                future.set_result(payload) if error is None else future.set_exception(error)

        callback_id = self._request_ack(
            event, data, settle, ack_timeout, _CALLBACK_TIMEOUT_TEXT, on_pending, pending
        )
        try:
            return await future
        finally:
            if callback_id is not None:
                self._sup.acks.discard(callback_id)

    async def emit_with_promise(
        self,
        event: str,
        data: Any,
        *,
        callback_timeout: float | None = None,
        on_pending: Callable[[], object] | None = None,
        pending_timeout: float | None = None,
    ) -> EmitResult:
        """Send an event; return the original promise's result dict, never raise for failures:
        ``{"success": True, "data": …}`` or ``{"success": False, "error": …, "errorCode": …}``.
        """
        name: object = event
        if not isinstance(name, str) or not name:
            return {"success": False, "error": "No event provided in emitWithPromise"}
        if data is None:
            return {"success": False, "error": "Data cannot be null or undefined"}
        ack_timeout, pending = self._timeouts(callback_timeout, pending_timeout)
        future: asyncio.Future[EmitResult] = asyncio.get_running_loop().create_future()

        def settle(error: ConnectorError | None, payload: Any) -> None:
            if not future.done():
                if error is None:
                    future.set_result({"success": True, "data": payload})
                else:
                    future.set_result(
                        {"success": False, "error": str(error), "errorCode": error.error_code}
                    )

        callback_id = self._request_ack(
            event, data, settle, ack_timeout, _PROMISE_TIMEOUT_TEXT, on_pending, pending
        )
        try:
            return await future
        finally:
            if callback_id is not None:
                self._sup.acks.discard(callback_id)

    # ------------------------------------------------------------------ receiving (scripts)

    def events(self, *names: str, maxsize: int = 1000) -> EventStream:
        """An async iterator of ``(name, payload)`` for server-pushed events (only ``names``,
        if given), from now on. At most ``maxsize`` events wait in it: when it is full, the
        **oldest** is dropped and counted (``stream.dropped``, ``stats.events_dropped``). It
        ends when the connector is closed; ``stream.close()`` or ``async with`` stops it early.
        """
        return self._dispatcher.open_stream(frozenset(names) if names else None, maxsize)

    async def next_event(self, name: str, timeout: float | None = None) -> Any:
        """Wait for the next pushed event ``name`` and return its payload.

        Raises ``TimeoutError`` after ``timeout`` seconds and ``ReconnectAbortedError`` if the
        connector is closed meanwhile.
        """
        _check_event(name)
        future = self._dispatcher.wait_event(name)
        try:
            return await wait_with_timeout(self._clock, future, timeout)
        finally:
            self._dispatcher.forget_waiter(name, future)

    # ------------------------------------------------------------------ internals: sending

    def _timeouts(self, timeout: float | None, pending: float | None) -> tuple[float, float]:
        if timeout is None:
            timeout = self._settings.callback_timeout
        else:
            _check_positive("callback timeout", timeout)
        if pending is None:
            pending = self._settings.pending_timeout
        else:
            _check_positive("pending timeout", pending)
        return float(timeout), float(pending)

    def _request_ack(
        self,
        event: str,
        data: Any,
        settle: Settle,
        timeout: float,
        timeout_text: str,
        on_pending: Callable[[], object] | None,
        pending_timeout: float,
    ) -> str | None:
        """Send an event with a callback id; failures are settled at once. Returns the id."""
        if on_pending is not None and not callable(on_pending):
            raise TypeError("on_pending must be callable")
        acks = self._sup.acks
        error = self._sup.can_send()
        if error is not None:
            settle(error, None)
            return None
        callback_id = acks.new_id()
        frame = encode_client_event(event, data, callback_id)  # EncodeError before registering
        try:
            acks.add(
                settle,
                callback_id=callback_id,
                timeout=timeout,
                timeout_text=timeout_text,
                on_pending=on_pending,
                pending_timeout=pending_timeout,
            )
        except ConnectorError as error:
            settle(error, None)
            return None
        self._sup.send(frame)  # cannot fail: checked above, nothing ran since
        return callback_id


def _check_event(event: object) -> None:
    if not isinstance(event, str) or not event:
        raise TypeError(f"event must be a non-empty string, got {event!r}")


def _check_payload(data: object) -> None:
    if data is None:
        raise TypeError("Data cannot be null or undefined (None); send {} or another value")
