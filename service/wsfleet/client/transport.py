"""What the connector needs from a WebSocket library: :class:`Transport` and :class:`Link`.

The connector is written against these two protocols only; ``wsfleet.client._transport`` adapts
aiohttp to them (and is the only client module that imports aiohttp). Tests inject an in-memory
transport. A transport translates every library error into the values below or into
:class:`~wsfleet.client.errors.HandshakeError`, so the connector never sees aiohttp exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Incoming",
    "IncomingBinary",
    "IncomingText",
    "Link",
    "LinkFailed",
    "RemoteClosed",
    "Transport",
]


@dataclass(frozen=True, slots=True)
class IncomingText:
    """A text frame from the server."""

    data: str


@dataclass(frozen=True, slots=True)
class IncomingBinary:
    """A binary frame from the server (the protocol uses text frames only; these are ignored)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RemoteClosed:
    """The connection is closed: the server's close code and reason, or 1006 without a frame."""

    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LinkFailed:
    """The connection broke with an error (protocol violation, oversized frame, I/O error)."""

    error: BaseException


Incoming = IncomingText | IncomingBinary | RemoteClosed | LinkFailed


class Link(Protocol):
    """One open WebSocket connection. ``receive`` is called by one task only."""

    async def send_text(self, data: bytes) -> None:
        """Write one text frame; ``data`` is UTF-8. Raises ``TransportError`` if it cannot."""
        ...

    async def receive(self) -> Incoming:
        """The next frame; after ``RemoteClosed`` or ``LinkFailed`` the link is finished."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait (bounded) for the server's; never raises."""
        ...


class Transport(Protocol):
    """Opens links. Owned by one connector, which calls ``aclose`` when it is closed."""

    async def open(self, url: str, *, connect_timeout: float) -> Link:
        """Open a WebSocket to ``url`` (sent verbatim). Raises ``HandshakeError`` on failure."""
        ...

    async def aclose(self) -> None: ...
