"""RESP over one asyncio connection, parsed by ``hiredis`` inside ``data_received``.

:class:`RespConnection` matches replies, in order, to the commands it sent, or hands every
reply to a push callback (a subscriber). :func:`open_connection` connects and authenticates.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import hiredis

from wsfleet.bus.broker import Command, LinkError, LinkTimings
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.tls import connect_error

log = logging.getLogger("wsfleet.bus")

CLIENT_NAME: Final = "wsfleet"


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


PRELOADED_SCRIPTS: list[str] = []
"""Lua scripts loaded (``SCRIPT LOAD``) by every connection's handshake, before it carries any
command, so that ``EVALSHA`` of them finds them even on a restarted Redis node."""


def preload_script(lua: str) -> None:
    if lua not in PRELOADED_SCRIPTS:
        PRELOADED_SCRIPTS.append(lua)


class RespConnection(asyncio.Protocol):
    """One RESP connection. Replies go, in order, to the commands in :attr:`waiting`, or - once
    :attr:`on_push` is set (a subscriber) - all to that callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[Command] = deque()
        self.on_push: Callable[[Any], None] | None = None
        self.on_writable: Callable[[], None] | None = None
        self.on_idle: Callable[[], None] | None = None
        """Called when the last reply awaited has arrived."""
        self.progress_at = 0.0
        """Loop time of the last reply, or of the write that made :attr:`waiting` non-empty."""
        self.read_at = loop.time()
        """Loop time of the last bytes read: any data is evidence that the peer is alive."""
        self.paused = False
        self.error: BaseException | None = None
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.read_at = self.loop.time()
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
            if not waiting and self.on_idle is not None:
                self.on_idle()
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


async def open_connection(node: RedisNode, timings: LinkTimings) -> RespConnection:
    """Connect and authenticate (``AUTH``, ``SELECT``, ``CLIENT SETNAME``)."""
    loop = asyncio.get_running_loop()
    context = (timings.tls or ssl.create_default_context()) if node.tls else None
    conn: RespConnection | None = None
    try:
        async with asyncio.timeout(timings.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: RespConnection(loop), node.host, node.port, ssl=context
            )
            if node.password is not None:
                user = (node.username,) if node.username else ()  # none: Redis < 6 too
                try:
                    await conn.request("AUTH", *user, node.password)
                except LinkError as exc:
                    who = node.username or "default"
                    raise LinkError(f"{node}: AUTH as user {who!r} refused ({exc})") from None
            if node.db:
                await conn.request("SELECT", node.db)
            await conn.request("CLIENT", "SETNAME", CLIENT_NAME)
            for lua in PRELOADED_SCRIPTS:
                try:
                    await conn.request("SCRIPT", "LOAD", lua)
                except LinkError as exc:  # e.g. an ACL without SCRIPT: callers fall back to EVAL
                    log.info("%s: SCRIPT LOAD refused (%s)", node, exc)
                    break
    except BaseException as exc:
        if conn is not None:
            conn.fail(ConnectionResetError("handshake failed"))
        cause = connect_error(str(node), exc)
        if cause is not exc:
            raise cause from None
        raise
    if not conn.is_open:
        raise ConnectionResetError("connection closed during the handshake")
    return conn
