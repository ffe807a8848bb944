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

from wsfleet.server.socket import Socket

log = logging.getLogger("wsfleet.server")

#: Environment variable choosing the read path: ``public`` forces aiohttp's public API.
PATH_ENV: Final = "WSFLEET_WS_PATH"

_DATA_TYPES = frozenset({WSMsgType.TEXT, WSMsgType.BINARY})
_WEB_WS_GLOBALS: dict[str, Any] = vars(_aiohttp_web_ws)
_BaseQueue: Any = _WEB_WS_GLOBALS.get("WebSocketDataQueue")

FrameSink = Callable[[Socket, str | bytes], bool]


class ReadPath(enum.Enum):
    DIRECT = "direct"
    """Data frames go to the node from aiohttp's data callback while the read loop is idle."""
    PUBLIC = "public"
    """Every message goes through ``WebSocketResponse.receive()`` (aiohttp's public API)."""


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
        """

        __slots__ = ("armed", "blocked", "on_frame", "socket", "usable")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.usable = isinstance(getattr(self, "_buffer", None), deque)
            self.armed = False
            self.blocked = False
            self.on_frame: FrameSink | None = None
            self.socket: Socket | None = None

        def feed_data(self, data: Any, size: int) -> None:
            if self.armed and not self._buffer and data.type in _DATA_TYPES:
                socket, on_frame = self.socket, self.on_frame
                if socket is not None and on_frame is not None:
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


def post_start_with_direct_queue(post_start: Callable[[], None]) -> None:
    """Run ``WebSocketResponse._post_start`` so that it builds our queue (by the module-level
    name it looks up), then put aiohttp's back."""
    if DirectQueue is None or _WEB_WS_GLOBALS.get("WebSocketDataQueue") is not _BaseQueue:
        post_start()
        return
    _WEB_WS_GLOBALS["WebSocketDataQueue"] = DirectQueue
    try:
        post_start()
    finally:
        _WEB_WS_GLOBALS["WebSocketDataQueue"] = _BaseQueue


def direct_queue_of(reader: object) -> Any:
    """The connection's queue when it is ours and usable, else None."""
    if DirectQueue is not None and isinstance(reader, DirectQueue) and reader.usable:
        return reader
    return None
