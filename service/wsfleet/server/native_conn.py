"""One connection of the native engine: an ``asyncio.Protocol`` on the raw transport.

A connection reads its HTTP request head (bounded by ``MAX_HEAD``, dropped after
``handshake_timeout``), then either hands the connection to aiohttp (anything that is not a valid
WebSocket upgrade: plain HTTP, static files, 426) or upgrades it: the node admits it (the
``authenticate`` hook, while reading is paused), the ``101`` answer goes out, and from then on
every message is parsed by a :class:`~wsfleet.protocol.wsreader.FrameReader` and handed to the
node from ``data_received`` - no task, no queue, no per-message object in between.

Writes are the :class:`~wsfleet.server.socket.Socket`'s (it writes pre-built frames to the
transport; more than ``max_send_buffer`` bytes unsent closes it with 4003, the slow-consumer
policy). This module writes only the handshake answer and close frames.

Flow control: at most ``max_frames_per_turn`` messages are handled per turn of the event loop
(reading pauses until the next turn); when the socket's handler slots are full, reading pauses
until one frees (the node's ``wait_for_slot``), so a client that sends faster than its handlers run
is held back by TCP, not by memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from socket import SO_KEEPALIVE, SOL_SOCKET
from typing import Any, Final, Protocol

from wsfleet.protocol.deflate import shared_deflater
from wsfleet.protocol.wsframe import build_close_frame
from wsfleet.protocol.wshandshake import (
    MAX_HEAD,
    Upgrade,
    accept_response,
    error_response,
    negotiate_deflate,
    parse_upgrade,
)
from wsfleet.protocol.wsreader import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    FrameReader,
    ProtocolError,
    parse_close,
)
from wsfleet.server.errors import Refuse
from wsfleet.server.ports import NodePort
from wsfleet.server.socket import Socket, UpgradeRequest
from wsfleet.server.ws_hook import compiled_masker
from wsfleet.tasks import TaskOwner


class ConnectionSite(Protocol):
    """What a connection needs of its listener (:class:`~wsfleet.server.native_site.NativeSite`)."""

    node: NodePort
    on_frame: Callable[[Socket, str | bytes], bool]
    budget: int
    tasks: TaskOwner
    pending: int
    closing: set[Connection]

    def http_protocol(self) -> asyncio.Protocol: ...

    def request_info(
        self, upgrade: Upgrade, transport: asyncio.BaseTransport
    ) -> UpgradeRequest: ...

    def finish(self, work: Coroutine[Any, Any, None]) -> None: ...


log = logging.getLogger("wsfleet.server")

_HEAD: Final = 0  # reading the request head
_UPGRADING: Final = 1  # admitting (authenticate, connected handlers); reading paused
_OPEN: Final = 2
_CLOSING: Final = 3  # our close frame is sent, or the client's arrived: data is discarded
_DONE: Final = 4  # the transport is gone, or the connection was handed to aiohttp

#: aiohttp's compiled frame masker, if it is there (2-3× faster on a usual short text frame).
MASK_INTO: Final = compiled_masker()


class Connection(asyncio.Protocol):
    """The protocol object of one connection (``__slots__``: an idle WebSocket costs this object,
    its reader, its :class:`Socket` and the transport)."""

    __slots__ = (
        "_ended",
        "_head",
        "_next_turn",
        "_peer_close",
        "_reader",
        "_site",
        "_state",
        "_task",
        "_timer",
        "_transport",
        "_waiting_slot",
        "socket",
    )

    def __init__(self, site: ConnectionSite) -> None:
        self._site = site
        self._transport: Any = None
        self._state = _HEAD
        self._head = b""
        self._timer: asyncio.TimerHandle | None = None
        self._reader: FrameReader | None = None
        self._task: asyncio.Future[Any] | None = None
        self._next_turn: asyncio.Handle | None = None
        self._waiting_slot = False
        self._peer_close: tuple[int, str] | None = None
        self._ended = False
        self.socket: Socket | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        site = self._site
        site.pending += 1
        self._timer = asyncio.get_running_loop().call_later(
            site.node.settings.handshake_timeout, self._handshake_expired
        )

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state >= _OPEN:
            reader = self._reader
            if reader is None:  # failed: nothing more is parsed
                return
            reader.feed(data)
            if self._task is None and self._next_turn is None:
                self._process()
        elif state == _HEAD:
            self._read_head(data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        state, self._state = self._state, _DONE
        self._cancel_timer()
        if state == _HEAD:
            self._site.pending -= 1
        elif state == _CLOSING:
            self._site.closing.discard(self)
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        socket = self.socket
        if self._task is not None and self._waiting_slot:
            self._task.cancel()
        if socket is None or self._ended:
            return  # an upgrade still being admitted sees _DONE and stops
        code, reason = socket.close_code, socket.close_reason
        if code is None:
            code, reason = self._peer_close if self._peer_close is not None else (1006, "")
        self._end(socket, code, reason)

    def _end(self, socket: Socket, code: int, reason: str) -> None:
        """The connection is over for the node (its ``close`` handlers run), once: when the
        transport is gone, or as soon as our close frame is out (as on aiohttp), while the
        transport waits for the client's answer."""
        self._ended = True
        task = self._task  # the upgrade (connection handlers), or a wait for a handler slot
        if task is not None and self._waiting_slot:
            task.cancel()  # no frame is handled any more
            task = None
        self._site.finish(self._closed(task, socket, code, reason))

    # -- the request head -------------------------------------------------------------------------

    def _read_head(self, data: bytes) -> None:
        head = self._head + data if self._head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > MAX_HEAD:
                self._hand_off(head)
            else:
                self._head = head
            return
        self._head = b""
        upgrade = parse_upgrade(head[: end + 4]) if end < MAX_HEAD else None
        if upgrade is None:
            self._hand_off(head)
            return
        self._leave_pending()
        self._state = _UPGRADING
        self._transport.pause_reading()
        task = self._site.tasks.spawn(self._upgrade(upgrade, head[end + 4 :]), "wsfleet-upgrade")
        if task is None:  # the node is closing
            self._transport.abort()
        self._task = task

    def _leave_pending(self) -> None:
        self._cancel_timer()
        self._site.pending -= 1

    def _hand_off(self, data: bytes) -> None:
        """Not a WebSocket upgrade: aiohttp answers it (and what follows on the connection)."""
        self._leave_pending()
        self._state = _DONE
        transport, self._transport = self._transport, None
        protocol = self._site.http_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._state == _HEAD:
            self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the upgrade ------------------------------------------------------------------------------

    async def _upgrade(self, upgrade: Upgrade, rest: bytes) -> None:
        site, transport = self._site, self._transport
        node = site.node
        info = site.request_info(upgrade, transport)
        try:
            admitted = await node.admit(info)
        except Refuse as refusal:
            node.stats.connections_refused[str(refusal.status)] += 1
            self._refuse(refusal.status, refusal.reason)
            return
        except Exception:
            log.exception("admitting a connection failed")
            self._refuse(500, "Internal Server Error")
            return
        if self._state == _DONE:  # the client left meanwhile
            return
        settings = node.settings
        deflate = negotiate_deflate(upgrade.extensions) if settings.compression else None
        transport.write(accept_response(upgrade.key, deflate[2] if deflate else None))
        self._reader = FrameReader(
            settings.max_message_size,
            deflate=deflate is not None,
            no_takeover=deflate is not None and deflate[1],
            mask_into=MASK_INTO,
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as aiohttp does: the OS notices a vanished peer too
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
        self._state = _OPEN
        socket = self.socket = node.open(transport, self._send_close, info, admitted)
        if deflate is not None:
            socket.deflate = shared_deflater(settings.compression_threshold, deflate[0])
        try:
            await node.connected(socket)
        except Exception as exc:  # a connection handler failed: as if in the read loop
            log.debug("connection %r failed: %r", socket, exc)
            node.failed(socket, exc)
            transport.abort()
            return
        finally:
            self._task = None
        if self._state == _DONE:
            return
        if rest:
            self._reader.feed(rest)
        self._resume()

    def _refuse(self, status: int, reason: str) -> None:
        if self._state != _DONE:
            self._state = _CLOSING
            self._transport.write(error_response(status, reason))
            self._transport.close()

    # -- messages ---------------------------------------------------------------------------------

    def _process(self) -> None:
        reader, socket = self._reader, self.socket
        assert reader is not None and socket is not None
        site = self._site
        on_frame, budget = site.on_frame, site.budget
        handled = 0
        try:
            while (message := reader.next_message()) is not None:
                opcode, payload = message
                if opcode <= OP_BINARY:
                    if self._state != _OPEN:
                        continue  # closing: data frames are discarded
                    handled += 1
                    try:
                        must_wait = on_frame(socket, payload)
                    except Exception as exc:  # as if raised in the read loop: it ends
                        site.node.failed(socket, exc)
                        self._transport.abort()
                        return
                    if must_wait:
                        self._wait_for_slot()
                        return
                    if handled >= budget and reader.buffered():
                        # this turn's budget is spent: the rest waits for the next turn
                        self._transport.pause_reading()
                        self._next_turn = asyncio.get_running_loop().call_soon(self._resume)
                        return
                elif opcode == OP_CLOSE:
                    self._peer_closed(payload)  # type: ignore[arg-type]
                    return
                elif self._state == _OPEN:
                    if opcode == OP_PING:
                        site.node.ping(socket, payload)  # type: ignore[arg-type]
                    else:
                        site.node.pong(socket, payload)  # type: ignore[arg-type]
        except ProtocolError as exc:
            self._fail(exc)

    def _resume(self) -> None:
        self._next_turn = None
        if self._state == _DONE or self._reader is None:
            return
        if not self._transport.is_closing():
            self._transport.resume_reading()
        self._process()

    def _wait_for_slot(self) -> None:
        self._transport.pause_reading()
        self._waiting_slot = True
        self._task = self._site.tasks.spawn(self._slot_then_resume(), "wsfleet-wait-slot")

    async def _slot_then_resume(self) -> None:
        socket = self.socket
        assert socket is not None
        try:
            await self._site.node.wait_for_slot(socket)
        finally:
            self._task = None
            self._waiting_slot = False
        self._resume()

    def _peer_closed(self, payload: bytes) -> None:
        code, reason = parse_close(payload)
        self._peer_close = (code, reason)
        if self._state == _OPEN:  # answer it (with 1000, as aiohttp does)
            self._state = _CLOSING
            self._transport.write(build_close_frame(1000))
        self._reader = None
        self._transport.close()

    def _fail(self, exc: ProtocolError) -> None:
        """The client broke the protocol: close with the error's code, read nothing more."""
        socket = self.socket
        assert socket is not None
        self._reader = None
        socket.close(exc.code, exc.reason)  # writes the close frame (see _send_close)
        self._site.node.failed(socket, exc)
        self._transport.close()

    def _send_close(self, code: int, reason: str) -> None:
        """The socket's closer: our close frame, then the client's answer (or the timeout)."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        self._site.closing.add(self)
        self._transport.write(build_close_frame(code, reason))
        self._timer = asyncio.get_running_loop().call_later(
            self._site.node.settings.close_timeout, self._close_expired
        )
        if self.socket is not None:
            self._end(self.socket, code, reason)

    def abort(self) -> None:
        """Drop the connection now (the node is closing)."""
        if self._state != _DONE:
            self._transport.abort()

    def _close_expired(self) -> None:
        self._timer = None
        if self._state != _DONE:
            log.debug("no close handshake in time: dropping the connection")
            self._transport.abort()

    async def _closed(
        self, task: asyncio.Future[Any] | None, socket: Socket, code: int, reason: str
    ) -> None:
        if task is not None and not task.done():  # connection handlers still running
            await asyncio.wait([task])
        await self._site.node.closed(socket, code, reason)

    def queued_bytes(self) -> int:
        """Bytes read from the client and not handled yet (for tests)."""
        return self._reader.buffered() if self._reader is not None else 0
