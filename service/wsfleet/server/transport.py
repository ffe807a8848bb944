"""The aiohttp adapter: the WebSocket port's only module that imports ``aiohttp.web``.

It turns an HTTP request into an :class:`UpgradeRequest`, asks the node (a
:class:`~wsfleet.server.ports.NodePort`) to admit it (the ``authenticate`` hook runs before the
upgrade), upgrades, and runs the read loop. Writes do not go through aiohttp: the node's
:class:`Socket` writes pre-built frames to the connection's transport. The read path is chosen
once per process at start-up (:func:`wsfleet.server.ws_hook.select_path`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WebSocketError, WSMsgType, web

from wsfleet.protocol.deflate import shared_deflater
from wsfleet.protocol.params import parse_ws_request_params
from wsfleet.server.errors import Refuse
from wsfleet.server.native_site import NativeSite
from wsfleet.server.pending import guarded_factory
from wsfleet.server.ports import NodePort
from wsfleet.server.settings import ServerSettings, WebSocketEngine, default_engine
from wsfleet.server.socket import Socket, UpgradeRequest
from wsfleet.server.ws_hook import (
    ReadPath,
    direct_queue_of,
    mask_check_mismatch,
    post_start_with_direct_queue,
    select_path,
)

log = logging.getLogger("wsfleet.server")

Application = web.Application
Request = web.Request
HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Runner(Protocol):
    """What serves the node's own port, as the lifecycle stops it."""

    async def cleanup(self) -> None: ...


class Runnable(Protocol):
    """The node's lifecycle as the adapter drives it (app start/stop, signals)."""

    @property
    def is_closing(self) -> bool: ...

    async def start(self, host: str, port: int, *, static_dir: Path | None = None) -> int: ...

    async def startup(self) -> None: ...

    async def close(self) -> None: ...

    async def drain(self, window: float | None = None) -> None: ...


_NODE_KEY: web.AppKey[NodePort] = web.AppKey("wsfleet_node")

#: The read path of this process, checked once, at the first start-up (see ``ws_hook``).
read_path = functools.cache(select_path)


@functools.cache
def checks_masks() -> bool:
    """Unmasked client frames are refused with 1002 (checked once, logged when not)."""
    reason = mask_check_mismatch()
    if reason is not None:
        log.warning(
            "aiohttp does not fit the frame mask check (%s): unmasked client frames are accepted",
            reason,
        )
    return reason is None


class _LazyCookies(Mapping[str, str]):
    """``request.cookies``, parsed on first access: most applications never read the cookies of
    a WebSocket upgrade, and parsing them for each one costs ~200 B per connection (S6)."""

    __slots__ = ("_request",)

    def __init__(self, request: web.Request) -> None:
        self._request = request

    def __getitem__(self, name: str) -> str:
        return self._request.cookies[name]  # aiohttp parses once and caches it on the request

    def __iter__(self) -> Iterator[str]:
        return iter(self._request.cookies)

    def __len__(self) -> int:
        return len(self._request.cookies)

    def __repr__(self) -> str:
        return repr(dict(self._request.cookies))


def upgrade_request(request: web.Request) -> UpgradeRequest:
    parsed = parse_ws_request_params(request.path_qs)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else None
    return UpgradeRequest(
        path=parsed.path or "",
        params=parsed.params,
        query_string=request.query_string,
        headers=request.headers,
        cookies=_LazyCookies(request),
        remote=remote,
        raw_path=request.path,
    )


class _WebSocket(web.WebSocketResponse):
    """aiohttp's WebSocket response, which also closes its connection for the :class:`Socket`
    (``schedule_close`` is the socket's closer). Keeping that here rather than in closures made
    per connection saves ~800 B per connection (S6)."""

    __slots__ = (
        "_wsfleet_close_task",
        "_wsfleet_close_timeout",
        "_wsfleet_transport",
    )

    def __init__(self, settings: ServerSettings) -> None:
        super().__init__(
            autoping=False,
            compress=settings.compression,
            max_msg_size=settings.max_message_size,
            timeout=settings.close_timeout,
        )
        self._wsfleet_close_timeout = settings.close_timeout
        self._wsfleet_transport: asyncio.Transport | None = None
        self._wsfleet_close_task: asyncio.Task[None] | None = None

    def _post_start(self, *args: Any, **kwargs: Any) -> None:
        direct, mask_check = read_path() is ReadPath.DIRECT, checks_masks()
        if not direct and not mask_check:
            super()._post_start(*args, **kwargs)
            return
        # aiohttp builds its message queue and frame parser here, by module-level names
        post_start_with_direct_queue(
            lambda: super(_WebSocket, self)._post_start(*args, **kwargs),
            direct=direct,
            mask_check=mask_check,
        )

    def queue(self) -> Any:
        """The connection's direct queue, or None on the public path."""
        return direct_queue_of(self._reader) if read_path() is ReadPath.DIRECT else None

    def schedule_close(self, code: int, reason: str) -> None:
        """Start the close handshake in a task (``Socket.close`` is synchronous); the
        connection's handler owns the task and awaits it before it returns."""
        if self._wsfleet_close_task is not None:
            return
        close = self._close_or_abort(code, reason)
        self._wsfleet_close_task = asyncio.get_running_loop().create_task(
            close, name="wsfleet-close"
        )

    async def finish_close(self) -> None:
        """Wait for the close handshake started by :meth:`schedule_close` (bounded by its own
        timeout); cancelled with the connection's handler."""
        task = self._wsfleet_close_task
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise

    async def _close_or_abort(self, code: int, reason: str) -> None:
        timeout = self._wsfleet_close_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.close(code=code, message=reason.encode()[:123])
        except TimeoutError:
            log.debug("no close handshake within %.1fs: dropping the connection", timeout)
            self._abort()
        except Exception as exc:
            log.debug("close failed: %r", exc)
            self._abort()

    def _abort(self) -> None:
        if self._wsfleet_transport is not None:
            self._wsfleet_transport.abort()


async def handle(
    node: NodePort,
    request: web.Request,
    *,
    socket_id: str | None = None,
    fallback: HttpHandler | None = None,
) -> web.StreamResponse:
    ws = _WebSocket(node.settings)
    if not ws.can_prepare(request).ok:
        if fallback is not None:
            return await fallback(request)
        return web.Response(status=426, text="Expected a WebSocket upgrade request\n")
    info = upgrade_request(request)
    try:
        admitted = await node.admit(info)
    except Refuse as refusal:
        node.stats.connections_refused[str(refusal.status)] += 1
        return web.Response(status=refusal.status, text=refusal.reason + "\n")
    transport = request.transport
    if transport is None:
        return web.Response(status=400, text="connection already closed\n")
    await ws.prepare(request)
    ws._wsfleet_transport = transport
    socket = node.open(transport, ws.schedule_close, info, socket_id or admitted)
    if 9 <= ws.compress <= 15:  # permessage-deflate negotiated, with this window size
        socket.deflate = shared_deflater(node.settings.compression_threshold, ws.compress)
    try:
        await node.connected(socket)
        await _read_loop(node, socket, ws)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a transport failure must never take the server down
        log.debug("connection %r failed: %r", socket, exc)
        node.failed(socket, exc)
    finally:
        code = socket.close_code if socket.close_code is not None else ws.close_code
        reason = socket.close_reason
        if not ws.closed:
            with contextlib.suppress(Exception):
                transport.abort()
        try:
            await node.closed(socket, code if code is not None else 1006, reason)
        finally:
            await ws.finish_close()
    return ws


async def _read_loop(node: NodePort, socket: Socket, ws: _WebSocket) -> None:
    on_frame = node.frame
    budget = node.settings.max_frames_per_turn
    queue = ws.queue()
    if queue is not None:
        queue.socket, queue.on_frame = socket, on_frame
    turn = 0  # frames taken from the queue since this connection last let the loop run
    try:
        while True:
            if queue is None:
                msg = await ws.receive()
            else:
                queue.arm(budget)  # data frames arriving while we wait are handled at once
                try:
                    msg = await ws.receive()
                finally:
                    queue.armed = False
            kind = msg.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                if queue is not None and queue.blocked:  # a frame handled directly filled
                    queue.blocked = False  # the handler slots: wait for one before this one
                    await node.wait_for_slot(socket)
                if on_frame(socket, msg.data):
                    await node.wait_for_slot(socket)
                turn += 1
                if turn >= budget:  # receive() does not yield while frames are queued:
                    turn = 0  # let the other connections, timers and Redis have a turn
                    await asyncio.sleep(0)
            elif kind is WSMsgType.PONG:
                node.pong(socket, msg.data)
            elif kind is WSMsgType.PING:
                node.ping(socket, msg.data)
            elif kind is WSMsgType.ERROR:
                error = msg.data
                if isinstance(error, WebSocketError) and socket.close_code is None:
                    # aiohttp closed with this code (1002, 1007, 1009): count what was sent
                    socket.close_code, socket.close_reason = int(error.code), str(error)
                node.failed(socket, error)
                return
            else:  # CLOSE, CLOSING, CLOSED
                return
    finally:
        if queue is not None:
            queue.armed = False
            queue.socket = queue.on_frame = None


class _GuardedSite(web.TCPSite):
    """``TCPSite`` whose accepted connections go through the pending-handshake cap
    (:mod:`wsfleet.server.pending`): its ``start`` is TCPSite's with that protocol factory."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, node: NodePort) -> None:
        super().__init__(runner, host, port)
        self._node = node

    def _pending(self) -> int:
        server, stats = self._runner.server, self._node.stats
        if server is None:
            return 0
        upgraded = stats.connections_accepted - sum(stats.connections_closed.values())
        return len(server.connections) - upgraded

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        settings = self._node.settings
        factory = guarded_factory(
            server, self._pending, settings.max_pending_handshakes, self._node.stats
        )
        self._server = await asyncio.get_running_loop().create_server(
            factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def static_files(directory: Path) -> HttpHandler:
    """Serve the files of one flat directory for plain GET requests; ``/`` is ``index.html``."""
    root = directory.resolve()

    async def serve_file(request: web.Request) -> web.StreamResponse:
        name = request.path.lstrip("/") or "index.html"
        candidate = (root / name).resolve()
        if candidate.parent != root or not candidate.is_file():
            return web.Response(status=404, text="Not found\n")
        return web.FileResponse(candidate)

    return serve_file


def attach(
    node: NodePort,
    lifecycle: Runnable,
    app: web.Application,
    path: str = "/ws",
    fallback: HttpHandler | None = None,
) -> None:
    read_path()  # checked at start-up, not on the first connection
    checks_masks()
    # A partial, not a wrapper coroutine: that would keep one more frame alive per connection.
    route = functools.partial(handle, node, fallback=fallback)
    app.router.add_route("GET", path, route)
    app[_NODE_KEY] = node

    async def run_with_app(_: web.Application) -> Any:
        await lifecycle.startup()
        yield
        await lifecycle.close()

    app.cleanup_ctx.append(run_with_app)


class _NativeRunner:
    """The native engine's site in front of the aiohttp runner that answers plain HTTP."""

    def __init__(self, site: NativeSite, runner: web.AppRunner) -> None:
        self.site = site
        self.runner = runner

    async def cleanup(self) -> None:
        await self.site.close()
        await self.runner.cleanup()


def engine_of(settings: ServerSettings) -> WebSocketEngine:
    return settings.websocket_engine or default_engine()


async def serve(
    node: NodePort,
    lifecycle: Runnable,
    host: str,
    port: int,
    *,
    static_dir: Path | None = None,
) -> tuple[Runner, list[int]]:
    """Listen on ``host:port`` with a catch-all WebSocket route (any path upgrades, as with the
    original server); plain HTTP GETs are served from ``static_dir`` or get 426. With the
    native engine (``ServerSettings.websocket_engine``), WebSocket upgrades are served by
    :mod:`wsfleet.server.native_site` and every other request by the same aiohttp application."""
    app = web.Application()
    fallback = static_files(static_dir) if static_dir is not None else None
    attach(node, lifecycle, app, "/{tail:.*}", fallback)
    # handlers are closed by Server.close() before cleanup: never wait aiohttp's default 60 s
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=node.settings.close_timeout + 1.0,
        # aiohttp closes a connection that has not sent a whole request within this (slowloris)
        keepalive_timeout=node.settings.handshake_timeout,
    )
    await runner.setup()
    if engine_of(node.settings) is WebSocketEngine.NATIVE:
        http = runner.server
        assert http is not None
        native = NativeSite(node, http, lambda: len(http.connections), host, port)
        try:
            ports = await native.start()
        except BaseException:
            await runner.cleanup()
            raise
        return _NativeRunner(native, runner), ports
    site = _GuardedSite(runner, host, port, node=node)
    await site.start()
    ports = [addr[1] for addr in runner.addresses if isinstance(addr, tuple)]
    return runner, ports
