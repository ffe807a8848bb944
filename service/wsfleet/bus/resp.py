"""RESP over one asyncio connection, parsed by ``hiredis`` inside ``data_received``.

:class:`RespConnection` matches replies, in order, to the commands it sent, or hands every
reply to a push callback (a subscriber). :func:`open_connection` connects and authenticates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


KNOWN_SCRIPTS: dict[str, str] = {}
"""Lua scripts by SHA1: an ``EVALSHA`` of one of them that meets ``NOSCRIPT`` (not loaded yet on
that Redis node, or someone ran ``SCRIPT FLUSH``) is sent again as ``EVAL`` by the connection
itself, in reply order (:meth:`RespConnection.data_received`); the ``EVAL`` loads it."""


def known_script(lua: str) -> str:
    """Register ``lua`` for ``EVALSHA`` with the ``NOSCRIPT`` fallback; returns its SHA1."""
    sha = hashlib.sha1(lua.encode()).hexdigest()
    KNOWN_SCRIPTS[sha] = lua
    return sha


@dataclass(slots=True)
class ScriptResends:
    """``EVALSHA`` calls sent again as ``EVAL`` after ``NOSCRIPT``, in this process (the first
    call of each script on each connection, and every call in flight during a SCRIPT FLUSH)."""

    count: int = 0


script_resends = ScriptResends()


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
        self.held = 0
        """Replies still due for calls written before the last ``EVAL`` resent after
        ``NOSCRIPT``: until they are in, the link writes nothing new (:meth:`_resent`)."""
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
            released = False
            while (reply := reader.gets()) is not False:
                command = waiting.popleft()
                if self.held:
                    self.held -= 1
                    released = not self.held
                future = command.future
                if isinstance(reply, hiredis.ReplyError):
                    if self._resent(command, reply):
                        continue
                    if future is None:
                        log.warning("Redis %s failed: %s", command.args[0], reply)
                    elif not future.done():
                        future.set_exception(LinkError(str(reply)))
                elif future is not None and not future.done():
                    future.set_result(reply)
            self.progress_at = self.loop.time()
            if released and not self.held and self.on_writable is not None:
                self.on_writable()  # what was held back is written now, behind the resent calls
            if not waiting and self.on_idle is not None:
                self.on_idle()
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.fail(LinkError(f"protocol error: {exc!r}"))

    def _resent(self, command: Command, reply: hiredis.ReplyError) -> bool:
        """An ``EVALSHA`` of a known script that met ``NOSCRIPT``, written again at once as
        ``EVAL``, which loads the script. The calls written before that ``EVAL`` and not answered
        yet meet ``NOSCRIPT`` too (for a script only this connection loads:
        :mod:`wsfleet.bus.history` gives each node scripts of its own) and are resent behind it
        in the same order; the link writes nothing new until they are all answered (``held``),
        or a new call could run before an older one resent."""
        args = command.args
        if args[0] != "EVALSHA" or not str(reply).startswith("NOSCRIPT"):
            return False
        lua = KNOWN_SCRIPTS.get(args[1])
        if lua is None or not self.is_open:
            return False
        script_resends.count += 1
        log.debug("script %s… not loaded on this Redis node: sent as EVAL", args[1][:8])
        again = Command(
            ("EVAL", lua, *args[2:]),
            command.future,
            command.routing_key,
            command.attempts,
            command.retry,
            command.pinned,
            command.keyed,
        )
        self.held = len(self.waiting)
        self.send((again,))
        return True

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
        data = b"".join([c.packed or pack_command(c.args) for c in batch])
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
