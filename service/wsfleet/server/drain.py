"""Graceful drain: what a node does between SIGTERM and exit.

Readiness goes false and upgrades are refused at once; connected clients are closed with 1012
("service restart": reconnect, elsewhere) in batches spread over most of the window, so the rest
of the fleet sees a ramp rather than a reconnect storm; then the node leaves the fleet.
"""

from __future__ import annotations

import asyncio
import logging
import math

from wsfleet.protocol.codes import CloseCode
from wsfleet.server.hub import Hub
from wsfleet.server.ports import FleetMembership

log = logging.getLogger("wsfleet.server")

#: Share of the window used to spread the closes; the rest is left for close handshakes.
SPREAD_SHARE = 0.6
#: Closes are sent at most this often (seconds between batches).
MIN_STEP = 0.05


def batches(count: int, spread: float) -> tuple[int, float]:
    """``(batch size, seconds between batches)`` to close ``count`` sockets over ``spread``."""
    if count <= 0:
        return 0, 0.0
    steps = max(1, min(count, int(spread / MIN_STEP)))
    return math.ceil(count / steps), (spread / steps if steps > 1 else 0.0)


async def drain(hub: Hub, fleet: FleetMembership | None, window: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    sockets = hub.connections()
    size, step = batches(len(sockets), window * SPREAD_SHARE)
    log.info(
        "draining %d connections over %.1fs (%d per batch); a second signal closes at once",
        len(sockets),
        window,
        size,
    )
    for start in range(0, len(sockets), max(size, 1)):
        for socket in sockets[start : start + size]:
            if socket.is_open:
                hub.stats.drained_connections += 1
                socket.close(CloseCode.SERVICE_RESTART, "server restarting: reconnect")
        if step:
            await asyncio.sleep(step)
    if not await hub.wait_no_connections(max(0.0, deadline - loop.time())):
        log.info("%d connections did not close in time", hub.connection_count)
    if fleet is not None:
        flushed = await fleet.flush(max(0.5, deadline - loop.time()))
        if not flushed:
            log.warning("drain: some bus messages were still queued at the deadline")
