"""One client connection as the application sees it.

A :class:`Socket` writes pre-built WebSocket frames straight to the connection's transport: no
per-message task, no per-recipient encoding. The transport's write buffer is the socket's send
queue, bounded by ``ServerSettings.max_send_buffer``; a client that lets it overflow is a slow
consumer and is closed with 4003.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from wsfleet.protocol.codec import MISSING, encode_ack, encode_event
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.stats import NodeStats

log = logging.getLogger("wsfleet.server")

Closer = Callable[[int, str], None]


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """What the client sent with its upgrade request, available before and after the upgrade."""

    path: str
    """The request path without its leading slash, e.g. ``"chat"`` (``parse_ws_request_params``)."""
    params: Mapping[str, str | list[str]]
    """Decoded query parameters (the original client's ``customParams``)."""
    query_string: str
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    remote: str | None
    raw_path: str = "/"
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything the ``authenticate`` hook wants to hand to the connection handlers."""

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        value = self.params.get(name)
        if value is None:
            return default
        return value[0] if isinstance(value, list) else value


class Socket:
    """A live client connection. ``id`` is set once the application accepts it.

    The socket is its connection's one writer: every frame the node sends (events, acks, pongs,
    heartbeats, pings) goes through :meth:`send_frame` in call order, and nothing is written
    after :meth:`close` started the close handshake or :meth:`terminate` dropped the connection.
    """

    __slots__ = (
        "__weakref__",
        "_auth_timer",
        "_closer",
        "_closing",
        "_data",
        "_inflight",
        "_max_buffer",
        "_slot_free",
        "_stats",
        "_transport",
        "alive",
        "background_since",
        "bucket",
        "close_code",
        "close_reason",
        "connection_id",
        "deflate",
        "id",
        "request",
    )

    def __init__(
        self,
        stats: NodeStats,
        transport: asyncio.WriteTransport,
        closer: Closer,
        request: UpgradeRequest,
        connection_id: int,
        max_buffer: int,
    ) -> None:
        self._stats = stats
        self._transport: asyncio.WriteTransport | None = transport
        self._closer = closer
        self._closing = False
        self._max_buffer = max_buffer
        # Created on first use, as is ``data``: most sockets never need them (S6 memory).
        self._inflight: set[asyncio.Future[Any]] | None = None
        self._slot_free: asyncio.Event | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self.request = request
        self.connection_id = connection_id
        self.id: str | None = None
        self._data: dict[str, Any] | None = None
        self.alive = True
        self.background_since: float | None = None
        self.deflate: Callable[[bytes], bytes] | None = None
        """Set when the client negotiated permessage-deflate (``ServerSettings.compression``)."""
        self.bucket: Any = None
        self.close_code: int | None = None
        self.close_reason: str = ""

    def __repr__(self) -> str:
        return f"<Socket #{self.connection_id} id={self.id!r} path={self.request.path!r}>"

    @property
    def data(self) -> dict[str, Any]:
        """Application state for this connection, free for handlers to use."""
        if self._data is None:
            self._data = {}
        return self._data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._data = value

    @property
    def params(self) -> Mapping[str, str | list[str]]:
        return self.request.params

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def is_open(self) -> bool:
        t = self._transport
        return not self._closing and t is not None and not t.is_closing()

    @property
    def is_accepted(self) -> bool:
        """True once the application gave the socket an id (``set_user_socket``)."""
        return self.id is not None

    # -- sending -----------------------------------------------------------------------------

    def emit(self, event: str, payload: Any = None) -> bool:
        """Push ``{"event", "payload"}`` to this client. False if the socket is not open."""
        return self.send_frame(build_text_frame(encode_event(event, payload)))

    def send_frame(self, frame: bytes) -> bool:
        """Write a complete pre-built WebSocket frame (see ``wsfleet.protocol.wsframe``)."""
        t = self._transport
        if self._closing or t is None or t.is_closing():
            return False
        if self.deflate is not None:
            frame = self.deflate(frame)
        t.write(frame)
        stats = self._stats
        stats.frames_out += 1
        stats.bytes_out += len(frame)
        if t.get_write_buffer_size() > self._max_buffer:
            stats.slow_consumer_disconnects += 1
            log.info("closing slow consumer %r: more than %d bytes unsent", self, self._max_buffer)
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
        return True

    def ack(self, callback_id: str, payload: Any = MISSING) -> bool:
        self._stats.acks_sent += 1
        return self.send_frame(build_text_frame(encode_ack(callback_id, payload)))

    # -- closing -----------------------------------------------------------------------------

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send a close frame with ``code`` and end the connection. Idempotent."""
        if self._closing or self._transport is None:
            return
        self._closing = True
        self.close_code = int(code)
        self.close_reason = reason
        self._closer(int(code), reason)

    def terminate(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self._closing = True
        t = self._transport
        if t is not None:
            t.abort()

    # -- the "entered background" rule -------------------------------------------------------

    def mark_background(self) -> None:
        """The client went to the background (e.g. a mobile app): it is dropped at the first ping
        tick after ``enter_background_close_time`` unless :meth:`mark_foreground` is called."""
        self.background_since = asyncio.get_running_loop().time()

    def mark_foreground(self) -> None:
        self.background_since = None

    # -- used by the node (not by applications) ---------------------------------------------

    def detach(self) -> None:
        """The connection is gone: write nothing more, stop the authentication timer."""
        self._transport = None
        self._closing = True
        self.cancel_auth_timer()

    def start_auth_timer(self, delay: float, expired: Callable[[Socket], None]) -> None:
        self.cancel_auth_timer()
        self._auth_timer = asyncio.get_running_loop().call_later(delay, self._auth_fired, expired)

    def _auth_fired(self, expired: Callable[[Socket], None]) -> None:
        self._auth_timer = None
        expired(self)

    def cancel_auth_timer(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None

    def track_handler(self, task: asyncio.Future[Any]) -> None:
        """Own an async handler's task until it ends (the in-flight handler limit counts them)."""
        if self._inflight is None:
            self._inflight = set()
        self._inflight.add(task)
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Future[Any]) -> None:
        if self._inflight is not None:
            self._inflight.discard(task)
        if self._slot_free is not None:
            self._slot_free.set()

    def handlers_in_flight(self) -> int:
        return len(self._inflight) if self._inflight is not None else 0

    async def wait_for_slot(self, limit: int) -> None:
        """Wait until fewer than ``limit`` async handlers of this socket run."""
        while self._inflight is not None and len(self._inflight) >= limit:
            if self._slot_free is None:
                self._slot_free = asyncio.Event()
            self._slot_free.clear()
            await self._slot_free.wait()

    async def cancel_handlers(self) -> None:
        """Cancel the socket's running async handlers and wait for them to end."""
        tasks = list(self._inflight or ())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class Acknowledge:
    """The ``ack`` passed to a handler: call it (once) to reply to the client's ``callbackId``."""

    __slots__ = ("_socket", "_start", "callback_id", "no_payload", "sent")

    def __init__(
        self,
        socket: Socket,
        callback_id: str,
        start: float | None = None,
        no_payload: bool = False,
    ) -> None:
        self._socket = socket
        self.callback_id = callback_id
        self.sent = False
        self._start = start
        #: The event came without ``payload``: ``ack(None)`` (an echo) leaves it out too.
        self.no_payload = no_payload

    def __call__(self, payload: Any = MISSING) -> bool:
        """Send the ack. Further calls are ignored (the client acts on the first one anyway)."""
        if self.sent:
            return False
        self.sent = True
        if payload is None and self.no_payload:
            payload = MISSING
        socket = self._socket
        stats = socket._stats
        if self._start is not None:
            stats.ack_seconds.observe(perf_counter() - self._start)
        stats.acks_sent += 1  # Socket.ack, inlined: this runs for every acked event
        return socket.send_frame(build_text_frame(encode_ack(self.callback_id, payload)))
