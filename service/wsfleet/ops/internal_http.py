"""The internal HTTP port: ``/metrics``, ``/healthz``, ``/readyz``, ``/cluster``, and the live
fleet view (``/`` and ``/fleet.json``, see :mod:`wsfleet.ops.fleet_view`).

Kept apart from the WebSocket port so that probes and scrapes never compete with clients, and so
that it can stay off the public network (Centrifugo does the same).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wsfleet.ops.fleet_view import PAGE, FleetView
from wsfleet.ops.metrics import node_registry
from wsfleet.server.server import Server
from wsfleet.version import __version__

log = logging.getLogger("wsfleet.ops")


def readiness(server: Server) -> list[str]:
    """Why the node is not ready (empty when it is): the lifecycle's one readiness rule."""
    return server.lifecycle.readiness()


def cluster_view(server: Server) -> dict[str, Any]:
    """This node, the fleet's live nodes and the Redis nodes with health and latency."""
    hub = server.hub
    view: dict[str, Any] = {
        "version": __version__,
        "ready": server.is_ready,
        "draining": server.is_draining,
        "connections": server.connection_count,
        "sockets": server.socket_count,
        "rooms": hub.total_rooms(),
        "roomMembers": hub.total_members(),
    }
    fleet = server.fleet
    if fleet is None:
        view["node"] = None
        return view
    bus = fleet.bus
    working = set(bus.working_paths())
    view["node"] = fleet.name
    view["liveNodes"] = {
        name: {k: v for k, v in info.items() if k != "boot"}  # boot ids stay off /cluster
        for name, info in sorted(fleet.registry.live.items())
    }
    view["redis"] = [
        {
            "key": key,
            "address": str(link.node),
            "publisher": link.publisher_healthy,
            "subscriber": link.subscriber_healthy,
            "publishable": link.publishable,
            "latencySeconds": link.latency,
            "probeOk": key in working,
            "probeRttSeconds": bus.stats.probe_rtt.get(key),
            "reconnects": link.health.reconnects,
        }
        for key, link in sorted(bus.links.items())
    ]
    view["outageBuffer"] = len(bus.outage)
    view["busAuth"] = {
        "mode": bus.auth.mode.value,  # off | signed | compat (unsigned from original nodes)
        "signingKeyId": bus.auth.signing_key_id,
        "keyIds": bus.auth.key_ids,
        "unsignedAccepted": bus.auth.unsigned_accepted,
        "rejected": dict(bus.stats.rejected),
    }
    view["pendingCalls"] = len(fleet.calls)
    return view


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def build_app(
    server: Server, registry: CollectorRegistry, view: FleetView | None = None
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reasons = readiness(server)
        return _json({"ready": not reasons, "reasons": reasons}, 503 if reasons else 200)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def cluster(_: web.Request) -> web.Response:
        return _json(cluster_view(server))

    async def fleet_page(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})

    async def fleet_json(_: web.Request) -> web.Response:
        assert view is not None
        return _json(await view.snapshot())

    app = web.Application()
    if view is not None:
        app.router.add_get("/", fleet_page)
        app.router.add_get("/fleet.json", fleet_json)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/cluster", cluster)
    return app


@dataclass
class InternalHttp:
    """The running internal port (``port`` is the bound one)."""

    host: str
    port: int
    registry: CollectorRegistry
    _runner: web.AppRunner | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}"


@contextlib.asynccontextmanager
async def internal_http(
    server: Server,
    host: str,
    port: int,
    *,
    room_namespaces: tuple[str, ...] = (),
) -> AsyncIterator[InternalHttp]:
    registry = node_registry(server, room_namespaces)
    view = FleetView(server, readiness)
    runner = web.AppRunner(build_app(server, registry, view), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    view.start()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = [addr[1] for addr in runner.addresses if isinstance(addr, tuple)]
        yield InternalHttp(host, bound[0], registry, runner)
    finally:
        await view.aclose()
        await runner.cleanup()
