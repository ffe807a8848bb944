"""The node's own port on the native WebSocket engine (``websocket_engine="native"``).

:class:`NativeSite` listens with one :class:`~wsfleet.server.native_conn.Connection` per accepted
TCP connection (behind the pending-handshake cap of :mod:`wsfleet.server.pending`), owns the
few tasks connections need (admitting an upgrade, waiting for a handler slot, the ``close``
handlers) and hands plain HTTP requests to aiohttp's request handler (``http_protocol``), which
answers them exactly as on the aiohttp engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookies
import re
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy

from wsfleet.protocol.params import parse_ws_request_params
from wsfleet.protocol.wshandshake import Upgrade
from wsfleet.server.native_conn import Connection
from wsfleet.server.pending import guarded_factory
from wsfleet.server.ports import NodePort
from wsfleet.server.socket import Socket, UpgradeRequest
from wsfleet.tasks import TaskOwner

#: Percent-escapes left as they are in ``query_string`` (as aiohttp shows it): the ones that
#: would change how the query splits into parameters.
_KEEP_ESCAPED = re.compile(r"%(?!26|3[dD]|2[bB]|23|3[bB])[0-9A-Fa-f]{2}")


def decoded_query(query: str) -> str:
    """The query string decoded for reading (``+`` is a space), its separators kept escaped."""
    return _KEEP_ESCAPED.sub(lambda m: unquote(m.group(0)), query.replace("+", " "))


class LazyCookies(Mapping[str, str]):
    """The ``Cookie`` header, parsed on first access (most applications never read it)."""

    __slots__ = ("_header", "_parsed")

    def __init__(self, header: str | None) -> None:
        self._header = header
        self._parsed: dict[str, str] | None = None

    def _cookies(self) -> dict[str, str]:
        if self._parsed is None:
            jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            if self._header:
                with contextlib.suppress(http.cookies.CookieError):  # unparsable: no cookies
                    jar.load(self._header)
            self._parsed = {name: morsel.value for name, morsel in jar.items()}
        return self._parsed

    def __getitem__(self, name: str) -> str:
        return self._cookies()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cookies())

    def __len__(self) -> int:
        return len(self._cookies())

    def __repr__(self) -> str:
        return repr(self._cookies())


class NativeSite:
    """One listening port of the native engine."""

    def __init__(
        self,
        node: NodePort,
        http_protocol: Callable[[], asyncio.Protocol],
        http_connections: Callable[[], int],
        host: str,
        port: int,
    ) -> None:
        self.node = node
        self.on_frame: Callable[[Socket, str | bytes], bool] = node.frame
        self.budget = node.settings.max_frames_per_turn
        self.http_protocol = http_protocol
        self._http_connections = http_connections
        self.tasks = TaskOwner("native WebSocket connections")
        self.pending = 0
        """Connections still sending their request head."""
        self.closing: set[Connection] = set()
        """Connections whose close frame is out, waiting for the client's (or the timeout)."""
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    def _pending(self) -> int:
        # handed to aiohttp: plain HTTP connections, pending or idle between requests
        return self.pending + self._http_connections()

    async def start(self) -> list[int]:
        settings = self.node.settings
        factory = guarded_factory(
            lambda: Connection(self),
            self._pending,
            settings.max_pending_handshakes,
            self.node.stats,
        )
        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, reuse_address=True
        )
        return [s.getsockname()[1] for s in self._server.sockets]

    def finish(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a connection's end (its ``close`` handlers) as an owned task."""
        self.tasks.spawn(work, "wsfleet-closed")

    def request_info(self, upgrade: Upgrade, transport: asyncio.BaseTransport) -> UpgradeRequest:
        target = upgrade.target
        path, _, query = target.partition("?")
        parsed = parse_ws_request_params(target)
        headers = CIMultiDictProxy(CIMultiDict(upgrade.headers))
        peer = transport.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else None
        return UpgradeRequest(
            path=parsed.path or "",
            params=parsed.params,
            query_string=decoded_query(query),
            headers=headers,
            cookies=LazyCookies(headers.get("Cookie")),
            remote=remote,
            raw_path=unquote(path),
        )

    async def close(self) -> None:
        """Stop listening, then wait (bounded by ``close_timeout``) for the connections' ends
        that are running, and stop what is left."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self.closing):  # their node side has ended already
            connection.abort()
        for _ in range(3):  # let transports aborted just now report their end
            await asyncio.sleep(0)
        await self.tasks.wait(self.node.settings.close_timeout)
        await self.tasks.aclose()
        if server is not None:
            await server.wait_closed()
