"""The aiohttp adapter: the only module of ``wsfleet.client`` that imports aiohttp.

- ``ClientSession.ws_connect`` with ``autoping=True`` (protocol pings from the server are
  answered, which keeps the server's dead-socket check happy), ``autoclose=True``,
  permessage-deflate only when ``compress=True`` (then aiohttp compresses the client's frames
  too), and no aiohttp heartbeat (the connector runs the application heartbeat).
- The URL is passed as an already-encoded ``yarl.URL``, so the query built from
  ``custom_params`` reaches the server byte for byte (``+`` stays ``+``).
- Text frames are written with ``send_frame(…, TEXT)`` from the codec's UTF-8 bytes, which is
  what ``send_str`` does after encoding; no decode/encode round trip.
- Every aiohttp error becomes a :mod:`wsfleet.client.transport` value or a ``HandshakeError``.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from yarl import URL

from wsfleet.client.errors import HandshakeError, TransportError, UpgradeRefusedError
from wsfleet.client.transport import (
    Incoming,
    IncomingBinary,
    IncomingText,
    Link,
    LinkFailed,
    RemoteClosed,
)
from wsfleet.protocol.codes import CloseCode

log = logging.getLogger("wsfleet.client")

_NO_STATUS = 1005
_MAX_REASON_BYTES = 123


class AiohttpLink:
    __slots__ = ("_ws",)

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send_text(self, data: bytes) -> None:
        try:
            await self._ws.send_frame(data, aiohttp.WSMsgType.TEXT)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise TransportError(f"cannot send: {str(exc) or type(exc).__name__}") from exc

    async def receive(self) -> Incoming:
        msg = await self._ws.receive()
        kind = msg.type
        if kind is aiohttp.WSMsgType.TEXT:
            return IncomingText(msg.data)
        if kind is aiohttp.WSMsgType.BINARY:
            return IncomingBinary(msg.data)
        if kind is aiohttp.WSMsgType.CLOSE:
            code = msg.data if isinstance(msg.data, int) and msg.data else _NO_STATUS
            return RemoteClosed(code, msg.extra if isinstance(msg.extra, str) else "")
        if kind is aiohttp.WSMsgType.ERROR:
            error = TransportError(f"connection failed: {msg.data or 'unknown error'}")
            if isinstance(msg.data, BaseException):
                error.__cause__ = msg.data
            return LinkFailed(error)
        # CLOSED / CLOSING without a close frame: the TCP connection went away (browsers: 1006).
        return RemoteClosed(CloseCode.ABNORMAL, "")

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._ws.close(code=code, message=reason.encode()[:_MAX_REASON_BYTES])
        except Exception:  # never raise from close: the link is being dropped anyway
            log.debug("error while closing the WebSocket", exc_info=True)


class AiohttpTransport:
    """Opens links with one ``aiohttp.ClientSession``, created on first use and closed by
    ``aclose()``, unless a session is passed in (then the caller owns and closes it)."""

    def __init__(
        self,
        *,
        max_frame_bytes: int,
        close_timeout: float,
        session: aiohttp.ClientSession | None = None,
        compress: bool = False,
    ) -> None:
        self._compress = 15 if compress else 0
        self._max_frame_bytes = max_frame_bytes
        self._close_timeout = close_timeout
        self._session = session
        self._owns_session = session is None

    async def open(self, url: str, *, connect_timeout: float) -> Link:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(connect_timeout):
                ws = await self._session.ws_connect(
                    URL(url, encoded=True),
                    autoping=True,
                    autoclose=True,
                    compress=self._compress,
                    heartbeat=None,
                    max_msg_size=self._max_frame_bytes,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._close_timeout),
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status != 101:
                raise UpgradeRefusedError(exc.status, exc.message) from exc
            raise HandshakeError(f"invalid WebSocket handshake: {exc.message}") from exc
        except TimeoutError as exc:
            raise HandshakeError(f"connecting timed out after {connect_timeout} s") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise HandshakeError(f"cannot connect: {str(exc) or type(exc).__name__}") from exc
        return AiohttpLink(ws)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
