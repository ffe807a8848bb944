"""Errors raised or reported by the Python client.

Every failure of an ack-ed emit is a :class:`ConnectorError` with an ``error_code`` class attribute.
``to_dict()`` turns it into the dict the original ``WebSocketConnector`` passed to callbacks
(``{"error": …, "errorCode": …}``), so the three emit styles report the same failures:

- ``emit(…, callback)`` calls ``callback(err.to_dict(), None)``;
- ``await emit_with_ack(…)`` raises the error;
- ``await emit_with_promise(…)`` returns ``{"success": False, **err.to_dict()}``.

``WS_NOT_OPEN`` and ``CALLBACK_TIMEOUT`` are the original codes. ``WS_CLOSED``,
``TOO_MANY_PENDING_ACKS`` and ``SEND_QUEUE_FULL`` are new (the original had no such failures: it let
acks wait for their timeout and buffered without limit). Misuse of the API (bad event name,
``None`` payload, non-positive timeout) raises ``TypeError`` / ``ValueError`` instead.
"""

from __future__ import annotations

from typing import ClassVar, TypedDict

from wsfleet.protocol.errors import WsfleetError

__all__ = [
    "AckTimeoutError",
    "ConnectionClosedError",
    "ConnectorError",
    "EmitError",
    "HandshakeError",
    "NotConnectedError",
    "ReconnectAbortedError",
    "SendQueueFullError",
    "TooManyPendingAcksError",
    "TransportError",
    "UpgradeRefusedError",
]


class EmitError(TypedDict):
    """The first argument of an ``emit`` callback when the call failed (original format)."""

    error: str
    errorCode: str


class ConnectorError(WsfleetError):
    """Root of the client's errors. ``error_code`` is the ``errorCode`` of the original dicts."""

    error_code: ClassVar[str] = "CONNECTOR_ERROR"

    def to_dict(self) -> EmitError:
        """The ``{"error": message, "errorCode": code}`` dict of the original client."""
        return {"error": str(self), "errorCode": self.error_code}


class NotConnectedError(ConnectorError):
    """The event was not sent: the socket is not open (connecting, reconnecting or closed)."""

    error_code: ClassVar[str] = "WS_NOT_OPEN"

    def __init__(self, message: str = "WebSocket is not open") -> None:
        super().__init__(message)


class AckTimeoutError(ConnectorError, TimeoutError):
    """No ack arrived within the callback timeout. ``callback_id`` is the id that was sent."""

    error_code: ClassVar[str] = "CALLBACK_TIMEOUT"

    def __init__(self, callback_id: str, message: str | None = None) -> None:
        super().__init__(message or f"Is callback timeout: {callback_id}")
        self.callback_id = callback_id


class ConnectionClosedError(ConnectorError):
    """The connection closed (or was replaced) before the ack arrived; it can never arrive now.

    ``code`` and ``reason`` are those of the close; ``code`` is ``None`` after a transport error.
    """

    error_code: ClassVar[str] = "WS_CLOSED"

    def __init__(self, code: int | None, reason: str = "", callback_id: str | None = None) -> None:
        what = f"code {code}" if code is not None else "connection error"
        text = f"WebSocket closed before the ack arrived ({what}"
        text += f", {reason!r})" if reason else ")"
        if callback_id is not None:
            text += f": {callback_id}"
        super().__init__(text)
        self.code = code
        self.reason = reason
        self.callback_id = callback_id


class TooManyPendingAcksError(ConnectorError):
    """``max_pending_acks`` acks are already waiting; the event was not sent."""

    error_code: ClassVar[str] = "TOO_MANY_PENDING_ACKS"

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many acks pending (limit {limit}); the event was not sent")
        self.limit = limit


class SendQueueFullError(ConnectorError):
    """``send_queue_size`` frames are already waiting to be written; the event was not sent."""

    error_code: ClassVar[str] = "SEND_QUEUE_FULL"

    def __init__(self, limit: int) -> None:
        super().__init__(f"send queue full ({limit} frames); the event was not sent")
        self.limit = limit


class HandshakeError(ConnectorError):
    """Opening the WebSocket failed: bad URL, DNS, refused TCP connection, TLS, timeout, ...

    Reported through the ``error`` event; the connector then follows the reconnect schedule.
    The underlying exception is ``__cause__``.
    """

    error_code: ClassVar[str] = "CONNECT_FAILED"


class UpgradeRefusedError(HandshakeError):
    """The server answered the upgrade request with an HTTP status instead of ``101``.

    ``status`` is that status, e.g. ``401`` or ``403`` when the server refused the credentials.
    """

    error_code: ClassVar[str] = "UPGRADE_REFUSED"

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(
            f"WebSocket upgrade refused with HTTP {status}" + (f" {message}" if message else "")
        )
        self.status = status


class TransportError(ConnectorError):
    """The open connection broke (I/O error, protocol violation, oversized frame, ...).

    Reported through the ``error`` event; the connector then reconnects on its schedule.
    The underlying exception is ``__cause__``.
    """

    error_code: ClassVar[str] = "TRANSPORT_ERROR"


class ReconnectAbortedError(ConnectorError):
    """The connector stopped trying to connect, so the awaited thing cannot happen.

    Raised by ``wait_open`` and ``next_event`` when the connector was closed (``manual_close`` /
    ``aclose``), reached its ``repeat_limit``, or stopped after a close its reconnect policy
    refused (e.g. 4011). ``close_code`` is the code of the last close, if that is the reason.
    """

    error_code: ClassVar[str] = "RECONNECT_ABORTED"

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code
