"""The cap on TCP connections that have not completed their upgrade (slowloris).

A connection counts as pending from its accept until its upgrade request is handled (or it
closes). aiohttp drops one that has not sent a whole request within ``handshake_timeout``; this
bounds how many may wait meanwhile: beyond ``max_pending_handshakes`` a new connection gets a
``503`` and is closed at once, before any of it is parsed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from wsfleet.server.stats import NodeStats

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 38\r\nConnection: close\r\n\r\nToo many connections waiting to open\r\n"
)


#: Seconds a refused connection may stay to read the answer: closing at once with its request
#: unread would make the kernel reset the connection, and the client might never see the 503.
_LINGER = 2.0


class _Busy(asyncio.Protocol):
    """Answers 503, half-closes, discards what the client sends, closes on its EOF (or after
    ``_LINGER``)."""

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writable = cast(asyncio.WriteTransport, transport)  # uvloop's are not subclasses
        writable.write(_BUSY)
        if writable.can_write_eof():
            writable.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_LINGER, writable.abort)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def guarded_factory(
    make: Callable[[], asyncio.BaseProtocol],
    pending: Callable[[], int],
    cap: int,
    stats: NodeStats,
) -> Callable[[], asyncio.BaseProtocol]:
    """A protocol factory for ``loop.create_server``: ``make()``, or a ``503`` answer when
    ``pending()`` connections already wait for their upgrade."""

    # Connections accepted in this turn of the loop: aiohttp counts them from connection_made,
    # which runs in the next turn.
    accepted = 0

    def turn_ended() -> None:
        nonlocal accepted
        accepted = 0

    def factory() -> asyncio.BaseProtocol:
        nonlocal accepted
        if pending() + accepted >= cap:
            stats.connections_refused["503"] += 1
            return _Busy()
        if not accepted:
            asyncio.get_running_loop().call_soon(turn_ended)
        accepted += 1
        return make()

    return factory
