"""Running a node: start, readiness, drain and close, with one state (:class:`Phase`), and the
protocol-ping loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from wsfleet.protocol.wsframe import PING_FRAME
from wsfleet.server import signals, transport
from wsfleet.server.dispatch import LISTENING, SERVER_CLOSE, Dispatcher
from wsfleet.server.drain import drain as drain_connections
from wsfleet.server.hub import Hub
from wsfleet.server.ports import FleetMembership
from wsfleet.server.state import DRAIN_CLOSE, NodeState, Phase
from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.server")

NO_REDIS_PATH = "no working path through Redis (the bus probe has not returned recently)"


def announce_listening(host: str, port: int) -> None:
    """Print where a node listens (what ``Server.run()`` does once the port is bound)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(
        f"wsfleet: listening on http://{shown}:{port} "
        f"(WebSocket on any path, e.g. ws://{shown}:{port}/ws; Ctrl+C stops)",
        flush=True,
    )


class Lifecycle:
    """Owns the node's phase, its ping loop and its own port (when it has one)."""

    def __init__(
        self,
        hub: Hub,
        dispatcher: Dispatcher,
        state: NodeState,
        fleet: FleetMembership | None,
    ) -> None:
        self.hub = hub
        self.dispatcher = dispatcher
        self.settings = dispatcher.settings
        self.state = state
        self.fleet = fleet
        self.tasks = TaskOwner("lifecycle")
        self._fleet_started = False
        self._own_port = False
        self._runner: transport.Runner | None = None
        self._ports: list[int] = []

    # -- the phase and readiness -------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self.state.phase

    def readiness(self) -> list[str]:
        """Why the node is not ready (empty when it is): the one readiness rule, used by
        ``Server.is_ready``, ``/readyz`` and the ``wsfleet_ready`` metric."""
        phase = self.state.phase
        reasons: list[str] = []
        if self.state.draining:
            reasons.append("draining")
        elif phase is Phase.CLOSED:
            reasons.append("closing")
        elif phase is Phase.STARTING:
            reasons.append("starting: the WebSocket port is not listening yet")
        if self.fleet is not None and not self.fleet.has_working_path():
            reasons.append(NO_REDIS_PATH)
            reasons.extend(self.fleet.link_problems())
        return reasons

    @property
    def is_closing(self) -> bool:
        return self.state.phase is Phase.CLOSED

    # -- running -----------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, static_dir: Path | None = None) -> int:
        """Listen on ``host:port``; the node is ready once the port is bound."""
        if self.state.phase is Phase.CLOSED:
            self.state.phase = Phase.STARTING
            self.state.late_close = None
        self._own_port = True
        self._runner, self._ports = await transport.serve(
            self.dispatcher, self, host, port, static_dir=static_dir
        )
        if self.state.phase is Phase.STARTING:
            self.state.phase = Phase.READY
        return self._ports[0]

    @property
    def port(self) -> int | None:
        return self._ports[0] if self._ports else None

    def attach(self, app: Any, path: str) -> None:
        transport.attach(self.dispatcher, self, app, path)

    async def handle(self, request: Any, socket_id: str | None) -> Any:
        return await transport.handle(self.dispatcher, request, socket_id=socket_id)

    def run(
        self,
        host: str,
        port: int,
        *,
        static_dir: Path | None,
        on_listening: Callable[[int], None] | None,
        prepare: Awaitable[Any] | None,
        sidecars: Sequence[Callable[[], AbstractAsyncContextManager[Any]]],
    ) -> None:
        signals.run(
            self,
            host,
            port,
            static_dir=static_dir,
            on_listening=on_listening,
            prepare=prepare,
            sidecars=sidecars,
        )

    async def startup(self) -> None:
        """Start the background work (ping loop; with a fleet, the bus and registry)."""
        if self.state.phase is Phase.CLOSED:
            self.state.phase = Phase.STARTING
            self.state.late_close = None
        if self.fleet is not None and not self._fleet_started:
            await self.fleet.start()
            self._fleet_started = True
        self.tasks.reopen()
        self.dispatcher.tasks.reopen()
        if not len(self.tasks):
            self.tasks.spawn(self._ping_loop(), "wsfleet-ping-loop")
        if not self._own_port and self.state.phase is Phase.STARTING:
            self.state.phase = Phase.READY  # mounted on an app, or used through handle()
        await self.dispatcher.emit_system_async(LISTENING)

    async def close(self) -> None:
        """Stop accepting, close every connection with ``shutdown_close_code``, stop every task.
        Idempotent."""
        if self.state.phase is Phase.CLOSED:
            return
        self.state.phase = Phase.CLOSED
        if self.state.late_close is None:
            self.state.late_close = (self.settings.shutdown_close_code, "server shutting down")
        hub = self.hub
        for socket in hub.connections():
            socket.close(self.settings.shutdown_close_code, "server shutting down")
        if not await hub.wait_no_connections(self.settings.close_timeout):
            log.info("%d connections did not close in time: dropping them", hub.connection_count)
        for socket in hub.connections():  # peers that never answered our close frame
            socket.terminate()
        await self.tasks.aclose()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._own_port = False
        if self.fleet is not None and self._fleet_started:
            self._fleet_started = False
            await self.fleet.aclose()
        await self.dispatcher.tasks.aclose()
        await self.dispatcher.emit_system_async(SERVER_CLOSE)

    async def drain(self, window: float | None = None) -> None:
        """Refuse upgrades, close clients with 1012 in batches over ``window`` seconds, flush
        the bus, then :meth:`close`. Idempotent."""
        if self.state.phase is Phase.DRAINING or self.state.phase is Phase.CLOSED:
            return
        self.state.phase = Phase.DRAINING
        self.state.late_close = DRAIN_CLOSE
        await drain_connections(
            self.hub, self.fleet, self.settings.drain_timeout if window is None else window
        )
        await self.close()

    async def _ping_loop(self) -> None:
        interval = self.settings.server_ping_interval
        background_limit = self.settings.enter_background_close_time
        loop = asyncio.get_running_loop()
        stats = self.hub.stats
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for socket in self.hub.connections():
                since = socket.background_since
                if since is not None and now - since > background_limit:
                    stats.background_sockets_reaped += 1
                    socket.terminate()
                elif not socket.alive:
                    stats.dead_sockets_reaped += 1
                    socket.terminate()
                else:
                    socket.alive = False
                    socket.send_frame(PING_FRAME)
