"""Running a node: its own port, an aiohttp app or a route; startup, drain and close; the
protocol-ping loop."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsfleet.protocol.wsframe import PING_FRAME
from wsfleet.server.drain import drain as drain_connections

if TYPE_CHECKING:
    pass

from wsfleet.server.core import _LISTENING, _SERVER_CLOSE, Authenticator
from wsfleet.server.inbound import ConnectionHandling

log = logging.getLogger("wsfleet.server")


def announce_listening(host: str, port: int) -> None:
    """Print where a node listens (what ``run()`` does once the port is bound)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(
        f"wsfleet: listening on http://{shown}:{port} "
        f"(WebSocket on any path, e.g. ws://{shown}:{port}/ws; Ctrl+C stops)",
        flush=True,
    )


class Lifecycle(ConnectionHandling):
    # -- running -----------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 9000, *, static_dir: Path | None = None
    ) -> int:
        """Listen on ``host:port`` (``port=0`` picks a free one); returns the bound port.

        Every path accepts WebSocket upgrades, as the original server did. Plain HTTP GETs are
        answered from ``static_dir`` (``/`` is its ``index.html``) when given, else with 426.
        """
        from wsfleet.server import transport

        self._closed_once = False
        self._runner, self._ports = await transport.serve(self, host, port, static_dir=static_dir)
        return self._ports[0]

    @property
    def port(self) -> int | None:
        return self._ports[0] if self._ports else None

    def attach(self, app: Any, path: str = "/ws") -> None:
        """Mount the WebSocket endpoint at ``path`` on an existing ``aiohttp.web.Application``;
        the node starts and stops with the application."""
        from wsfleet.server import transport

        transport.attach(self, app, path)

    async def handle(self, request: Any, *, socket_id: str | None = None) -> Any:
        """Upgrade an ``aiohttp.web.Request`` from your own route (after your own checks) and run
        the connection; ``socket_id`` registers the socket at once."""
        from wsfleet.server import transport

        return await transport.handle(self, request, socket_id=socket_id)

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        static_dir: Path | None = None,
        on_listening: Callable[[int], None] | None = None,
        prepare: Awaitable[Any] | None = None,
        sidecars: Sequence[Callable[[], AbstractAsyncContextManager[Any]]] = (),
    ) -> None:
        """Blocking: listen until SIGINT/SIGTERM, then :meth:`drain` (a second signal closes at
        once) and return. ``prepare`` is awaited on the server's event loop before it listens;
        ``sidecars`` (async context managers, e.g. an internal HTTP port) run around it.
        Without ``on_listening`` it prints the address it listens on."""
        from wsfleet.server import transport

        if on_listening is None:
            on_listening = functools.partial(announce_listening, host)

        transport.run(
            self,
            host,
            port,
            static_dir=static_dir,
            on_listening=on_listening,
            prepare=prepare,
            sidecars=sidecars,
        )

    def enable_tracing(self, provider: Any = None) -> None:
        """Emit OpenTelemetry spans (client events, bus publish and receive) through
        ``provider`` (an SDK ``TracerProvider``; default: the global one)."""
        from wsfleet.tracing import Tracing

        name = self.fleet.name if self.fleet is not None else None
        self.tracing = Tracing(provider, name)
        if self.fleet is not None:
            self.fleet.bus.tracing = self.tracing

    def set_authenticator(self, authenticate: Authenticator | None) -> None:
        """Install (or remove) the hook that admits or refuses upgrades (see the constructor)."""
        self._authenticate = authenticate

    async def startup(self) -> None:
        """Start the node's background work (ping loop; with a fleet, the bus and registry).
        Raises ``DuplicateNodeError`` when another live node has this node's name."""
        if self.fleet is not None and not self._fleet_started:
            await self.fleet.start()
            self._fleet_started = True
        self._accepting = True
        self._draining = False
        self._started = True
        self._closed_once = False
        if self._ping_task is None:
            self._ping_task = asyncio.create_task(self._ping_loop(), name="wsfleet-ping-loop")
        await self._emit_system_async(_LISTENING)

    async def close(self) -> None:
        """Stop accepting, close every connection with ``shutdown_close_code``, stop loops.
        Idempotent."""
        if self._closed_once:
            return
        self._closed_once = True
        self._accepting = False
        self._started = False
        for socket in list(self._connections):
            socket.close(self.settings.shutdown_close_code, "server shutting down")
        await self._wait_connections_gone(self.settings.close_timeout)
        for socket in list(self._connections):  # peers that never answered our close frame
            socket.terminate()
        if self._ping_task is not None:
            self._ping_task.cancel()
            await asyncio.gather(self._ping_task, return_exceptions=True)
            self._ping_task = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.fleet is not None and self._fleet_started:
            self._fleet_started = False
            await self.fleet.aclose()
        await self._emit_system_async(_SERVER_CLOSE)

    async def _wait_connections_gone(self, timeout: float) -> None:
        if not self._connections:
            return
        self._all_gone = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
        except TimeoutError:
            log.info("%d connections did not close in time: dropping them", len(self._connections))
        finally:
            self._all_gone = None

    async def drain(self, window: float | None = None) -> None:
        """Graceful drain, then :meth:`close`: refuse upgrades (503), close clients with 1012 in
        batches over ``window`` seconds (default ``settings.drain_timeout``) so they reconnect to
        other nodes, flush the bus, leave the fleet. Idempotent."""
        if self._draining or self._closed_once:
            return
        self._draining = True
        self._accepting = False
        await drain_connections(self, self.settings.drain_timeout if window is None else window)
        await self.close()

    @property
    def is_accepting(self) -> bool:
        return self._accepting

    @property
    def is_draining(self) -> bool:
        return self._draining

    @property
    def is_closing(self) -> bool:
        """True once :meth:`close` has started."""
        return self._closed_once

    @property
    def is_ready(self) -> bool:
        """Readiness: started, accepting upgrades, not draining and, in a fleet, with a working
        path through Redis (the bus probe made the round trip recently)."""
        if not (self._started and self._accepting) or self._draining:
            return False
        return self.fleet is None or bool(self.fleet.bus.working_paths())

    async def _ping_loop(self) -> None:
        interval = self.settings.server_ping_interval
        background_limit = self.settings.enter_background_close_time
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for socket in list(self._connections):
                since = socket.background_since
                if since is not None and now - since > background_limit:
                    self.stats.background_sockets_reaped += 1
                    socket.terminate()
                elif not socket.alive:
                    self.stats.dead_sockets_reaped += 1
                    socket.terminate()
                else:
                    socket.alive = False
                    socket.send_frame(PING_FRAME)
