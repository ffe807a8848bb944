"""The one place wsfleet relies on aiohttp internals: the direct frame hook.

aiohttp parses a connection's frames into a ``WebSocketDataQueue`` that its ``receive()`` waits
on. The hook hands a data frame straight to the node from ``feed_data`` while the read loop is
parked on an empty queue, which saves a future, a task step and ``receive()`` per frame (see
docs/benchmarks.md for the figures). It needs four private things of aiohttp, all checked once,
at start-up, by :func:`select_path`:

- ``aiohttp.web_ws.WebSocketDataQueue`` is a class with ``feed_data(self, data, size)``;
- ``WebSocketResponse._post_start`` builds that queue by its module-level name;
- the queue keeps its messages in a ``deque`` named ``_buffer`` (checked per connection too);
- the response keeps the queue as ``_reader``.

When any of them does not hold (another aiohttp), or ``WSFLEET_WS_PATH=public`` is set, every
frame takes aiohttp's public ``receive()`` path instead, and one log line says so.

On both paths, aiohttp's server accepts client frames without a mask, which RFC 6455 (§5.1)
says a server must answer by closing the connection. :class:`MaskCheck` wraps the frame parser
``_post_start`` builds (``WebSocketReader``, looked up by its module-level name) and closes with
1002 on the first unmasked frame; :func:`mask_check_mismatch` checks what it needs at start-up,
and when it does not hold, unmasked frames are accepted as aiohttp does and one log line says so.

The native engine borrows one compiled function of aiohttp: its frame masker, which XORs a
``bytearray`` in place (:func:`compiled_masker`, checked against wsfleet's own ``unmask``; without
it, the pure-Python one is used).
"""

from __future__ import annotations

import enum
import inspect
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from aiohttp import WSMsgType
from aiohttp import web_ws as _aiohttp_web_ws

from wsfleet.protocol.wsreader import MaskInto, unmask
from wsfleet.server.socket import Socket

log = logging.getLogger("wsfleet.server")

#: Environment variable choosing the read path: ``public`` forces aiohttp's public API.
PATH_ENV: Final = "WSFLEET_WS_PATH"

_DATA_TYPES = frozenset({WSMsgType.TEXT, WSMsgType.BINARY})
_WEB_WS_GLOBALS: dict[str, Any] = vars(_aiohttp_web_ws)
_BaseQueue: Any = _WEB_WS_GLOBALS.get("WebSocketDataQueue")
_BaseReader: Any = _WEB_WS_GLOBALS.get("WebSocketReader")

FrameSink = Callable[[Socket, str | bytes], bool]


class ReadPath(enum.Enum):
    DIRECT = "direct"
    """Data frames go to the node from aiohttp's data callback while the read loop is idle."""
    PUBLIC = "public"
    """Every message goes through ``WebSocketResponse.receive()`` (aiohttp's public API)."""


def compiled_masker() -> MaskInto | None:
    """aiohttp's compiled masker, when it is installed and unmasks as
    :func:`~wsfleet.protocol.wsreader.unmask` does (None otherwise)."""
    try:
        from aiohttp._websocket.mask import (  # type: ignore[import-not-found,unused-ignore]
            _websocket_mask_cython as mask_into,
        )
    except ImportError:
        return None
    key = b"\x01\x82\x43\xc4"
    for size in (0, 1, 5, 37, 125):
        sample = bytes(range(7, 7 + size))
        data = bytearray(sample)
        try:
            mask_into(key, data)
        except Exception:  # another signature: not the function this was written for
            return None
        if bytes(data) != unmask(sample, key):
            return None
    checked: MaskInto = mask_into
    return checked


def hook_mismatch() -> str | None:
    """Why the installed aiohttp does not fit the hook (None when it does)."""
    if not isinstance(_BaseQueue, type):
        return "aiohttp.web_ws has no WebSocketDataQueue class"
    feed = getattr(_BaseQueue, "feed_data", None)
    if feed is None:
        return "WebSocketDataQueue has no feed_data"
    try:
        params = list(inspect.signature(feed).parameters)
    except (TypeError, ValueError):
        return "the signature of WebSocketDataQueue.feed_data cannot be read"
    if params != ["self", "data", "size"]:
        return f"WebSocketDataQueue.feed_data takes {params}, not ['self', 'data', 'size']"
    post_start = getattr(_aiohttp_web_ws.WebSocketResponse, "_post_start", None)
    code = getattr(post_start, "__code__", None)
    if code is None or "WebSocketDataQueue" not in code.co_names or "_reader" not in code.co_names:
        return "WebSocketResponse._post_start no longer builds its queue as _reader"
    if "_buffer" not in dir(_BaseQueue):
        return "WebSocketDataQueue has no _buffer"
    return None


def select_path() -> ReadPath:
    """The read path for this process: checked at start-up, logged once when it is not direct."""
    wanted = os.environ.get(PATH_ENV, "").strip().lower()
    if wanted not in ("", "direct", "public"):
        raise ValueError(f"{PATH_ENV} must be 'direct' or 'public', got {wanted!r}")
    if wanted == "public":
        log.info("%s=public: client frames take aiohttp's public receive() path", PATH_ENV)
        return ReadPath.PUBLIC
    reason = hook_mismatch()
    if reason is not None:
        log.warning(
            "aiohttp %s does not fit the direct frame hook (%s): using the public receive() "
            "path, which is slower",
            aiohttp.__version__,
            reason,
        )
        return ReadPath.PUBLIC
    return ReadPath.DIRECT


DirectQueue: Any = None

if isinstance(_BaseQueue, type):

    class _DirectQueue(_BaseQueue):  # type: ignore[misc]
        """aiohttp's queue of parsed messages, which hands a data frame straight to the node
        while the read loop is parked on an empty queue (``armed``).

        Order is kept: frames are dispatched directly only when nothing is queued before them
        and the read loop is idle; control frames, and every frame while the read loop is busy
        (a handler slot is awaited, a message is being handled) go through the queue as before.

        Fairness: at most ``budget`` frames are handled directly while the read loop is parked
        (one turn of the event loop for this connection); the rest of what aiohttp parsed goes
        through the queue, which the read loop takes in turns of the same size. aiohttp stops
        reading the socket when the queue is over its byte limit, so a flooding client is held
        back by TCP instead of holding the loop.
        """

        __slots__ = ("armed", "blocked", "budget", "on_frame", "socket", "spent", "usable")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.usable = isinstance(getattr(self, "_buffer", None), deque)
            self.armed = False
            self.blocked = False
            self.budget = 1
            self.spent = 0
            self.on_frame: FrameSink | None = None
            self.socket: Socket | None = None

        def arm(self, budget: int) -> None:
            """The read loop waits on the empty queue: the next ``budget`` data frames may be
            handled from the data callback."""
            self.budget = budget
            self.spent = 0
            self.armed = True

        def feed_data(self, data: Any, size: int) -> None:
            if self.armed and not self._buffer and data.type in _DATA_TYPES:
                socket, on_frame = self.socket, self.on_frame
                if socket is not None and on_frame is not None:
                    self.spent += 1
                    if self.spent >= self.budget:
                        # This turn's budget is spent: later frames wait in the queue for the
                        # read loop, which runs at the earliest in the next turn of the loop.
                        self.armed = False
                    try:
                        if on_frame(socket, data.data):
                            # The handler slots are full: the read loop waits for one before
                            # it takes the next frame (from the queue).
                            self.armed = False
                            self.blocked = True
                    except Exception as exc:  # as if raised in the read loop: it ends
                        self.armed = False
                        self.set_exception(exc)
                    return
            super().feed_data(data, size)

        def queued(self) -> int:
            """Messages waiting in the queue (for tests)."""
            return len(self._buffer)

    DirectQueue = _DirectQueue


def mask_check_mismatch() -> str | None:
    """Why the installed aiohttp does not fit :class:`MaskCheck` (None when it does)."""
    reader: Any = _BaseReader
    if not isinstance(reader, type):
        return "aiohttp.web_ws has no WebSocketReader class"
    try:
        feed: Any = getattr(reader, "feed_data", None)
        params = list(inspect.signature(feed).parameters)
    except (AttributeError, TypeError, ValueError):
        return "the signature of WebSocketReader.feed_data cannot be read"
    if params != ["self", "data"]:
        return f"WebSocketReader.feed_data takes {params}, not ['self', 'data']"
    post_start = getattr(_aiohttp_web_ws.WebSocketResponse, "_post_start", None)
    code = getattr(post_start, "__code__", None)
    if code is None or "WebSocketReader" not in code.co_names or "set_parser" not in code.co_names:
        return "WebSocketResponse._post_start no longer hands a WebSocketReader to set_parser"
    return None


class MaskCheck:
    """aiohttp's frame parser behind a scan of the frame headers: the first client frame without
    a mask fails the connection with 1002 (through the queue, as aiohttp's own protocol errors
    do), before any byte of its chunk is parsed. Costs a few header bytes per frame."""

    __slots__ = ("_failed", "_head", "_inner", "_queue", "_skip")

    def __init__(self, inner: Any, queue: Any) -> None:
        self._inner = inner
        self._queue = queue  # the parser's queue (aiohttp's compiled parser does not show it)
        self._head = b""  # an incomplete frame header from the previous chunk
        self._skip = 0  # bytes of the current frame's payload still to come
        self._failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, data
        if self._head:
            buf, pos, self._head = self._head + data, 0, b""
        else:
            buf, pos = data, self._skip
        end = len(buf)
        while pos < end:  # pos is the start of a frame header
            if end - pos < 2:
                break
            second = buf[pos + 1]
            if not second & 0x80:
                return self._fail()
            length = second & 0x7F
            if length == 126:
                if end - pos < 4:
                    break
                length, size = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, size = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            else:
                size = 2
            pos += size + 4 + length
        if pos < end:
            self._head, self._skip = bytes(buf[pos:]), 0
        else:
            self._skip = pos - end
        result: tuple[bool, bytes] = self._inner.feed_data(data)
        return result

    def _fail(self) -> tuple[bool, bytes]:
        self._failed = True
        error = aiohttp.WebSocketError(
            aiohttp.WSCloseCode.PROTOCOL_ERROR, "client frames must be masked (RFC 6455 5.1)"
        )
        self._queue.set_exception(error)
        return True, b""


def _checked_reader(queue: Any, *args: Any, **kwargs: Any) -> MaskCheck:
    return MaskCheck(_BaseReader(queue, *args, **kwargs), queue)


def post_start_with_direct_queue(
    post_start: Callable[[], None], *, direct: bool = True, mask_check: bool = False
) -> None:
    """Run ``WebSocketResponse._post_start`` so that it builds our queue (``direct``) and our
    mask-checking parser (``mask_check``), by the module-level names it looks up, then put
    aiohttp's back."""
    swap: dict[str, Any] = {}
    direct_fits = (
        DirectQueue is not None and _WEB_WS_GLOBALS.get("WebSocketDataQueue") is _BaseQueue
    )
    if direct and direct_fits:
        swap["WebSocketDataQueue"] = DirectQueue
    if mask_check and _WEB_WS_GLOBALS.get("WebSocketReader") is _BaseReader:
        swap["WebSocketReader"] = _checked_reader
    saved = {name: _WEB_WS_GLOBALS[name] for name in swap}
    _WEB_WS_GLOBALS.update(swap)
    try:
        post_start()
    finally:
        _WEB_WS_GLOBALS.update(saved)


def direct_queue_of(reader: object) -> Any:
    """The connection's queue when it is ours and usable, else None."""
    if DirectQueue is not None and isinstance(reader, DirectQueue) and reader.usable:
        return reader
    return None
