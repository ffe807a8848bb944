"""A rolling restart under traffic with connection state recovery: ``python -m chaos.run --only
rolling``.

Three node processes behind a balancer that routes new connections to ready nodes only (as a
Kubernetes Service does), ``clients`` recovering Python clients in the room ``feed``/``main``,
and a source node (in this process, never restarted) broadcasting numbered messages to the room
at a steady rate. Each node in turn gets SIGTERM (a drain: its clients are closed with 1012 and
reconnect through the balancer to the others, resuming their sessions), and a new process takes
its place once it exited. Then the source stops; every client must have received every message
exactly once, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.balancer import Backend, Balancer

from chaos.procs import Node, Redis, node_args, rss_mb
from chaos.scenarios import Row
from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.client import Connector
from wsfleet.client.recovery import RecoveryInfo
from wsfleet.server import Server, ServerSettings

NODE_ARGS = (
    *("--app", "chaos.recovery_app:setup", "--recovery", "true", "--drain-timeout", "3"),
    *("--lease-ttl", "3", "--lease-refresh", "1", "--rate-limit-per-second", "100000"),
)


@dataclass
class Recorder:
    client: Connector
    got: list[int] = field(default_factory=list)
    recoveries: list[RecoveryInfo] = field(default_factory=list)

    @classmethod
    def make(cls, url: str) -> Recorder:
        client = Connector(
            url, recover=True, fast_reconnect_interval=0.2, connect_timeout=10.0, close_timeout=1.0
        )
        recorder = cls(client)
        recorder.client.on_event("tick", lambda p: recorder.got.append(p["n"]))
        recorder.client.on("recovery", recorder.recoveries.append)
        return recorder


async def _start(name: str, redis: Redis) -> tuple[Node, Backend]:
    node = Node(name, node_args([redis], *NODE_ARGS), {})
    await node.start()
    return node, Backend(node.port, node.internal + "/readyz")


async def rolling_restart(clients: int, rate: float) -> Row:
    row = Row(
        "rolling restart, recovering clients",
        f"{clients} clients in one room, {rate:g} room msgs/s, 3 nodes behind a balancer",
        "SIGTERM (drain) of each node in turn, a new process in its place",
    )
    redis = Redis()
    await redis.start()
    nodes: list[Node] = []
    recorders: list[Recorder] = []
    balancer = Balancer()
    source = Server(
        ServerSettings(recovery=True),
        fleet=FleetSettings(redis=(RedisNode.parse(redis.address),), server_name="source"),
    )
    stop = asyncio.Event()
    sent = 0

    async def publish() -> None:
        nonlocal sent
        started = time.monotonic()
        while not stop.is_set():
            source.broadcast_to_room("feed", "main", "tick", {"n": sent})
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))

    publisher: asyncio.Task[None] | None = None
    try:
        await source.startup()
        await balancer.start()
        for i in range(3):
            node, backend = await _start(f"n{i}", redis)
            nodes.append(node)
            balancer.add(backend)
            await balancer.wait_ready(backend, timeout=20)
        row.rss_before = sum(rss_mb(n.pid) for n in nodes)
        for i in range(clients):
            recorder = Recorder.make(balancer.url(f"id=c{i}"))
            recorders.append(recorder)
            await recorder.client.connect()
        # every client has its session (its marks are written): from now on nothing may be lost
        await _wait(lambda: all(r.client.recovery_session for r in recorders), 120)
        publisher = asyncio.create_task(publish())
        await asyncio.sleep(2)
        for i in range(3):
            old = nodes[i]
            backend = balancer.backends[i]
            await old.stop()  # drain: 1012 to its clients over 3 s, then exit
            node, fresh = await _start(f"n{i}-v2", redis)
            nodes[i] = node
            backend.port, backend.readyz, backend.ready = fresh.port, fresh.readyz, False
            await balancer.wait_ready(backend, timeout=20)
            await asyncio.sleep(2)
        stop.set()
        await publisher
        await _wait(lambda: all(len(r.got) >= sent for r in recorders), 60, quiet=True)
        row.rss_after = sum(rss_mb(n.pid) for n in nodes)
    finally:
        stop.set()
        if publisher is not None:
            await asyncio.gather(publisher, return_exceptions=True)
        await asyncio.gather(
            *(asyncio.wait_for(r.client.aclose(), 10) for r in recorders), return_exceptions=True
        )
        await balancer.close()
        for node in nodes:
            await node.stop()
        await source.close()
        await redis.stop()
    expected = list(range(sent))
    lost = dup = reordered = 0
    for r in recorders:
        lost += len(set(expected) - set(r.got))
        dup += len(r.got) - len(set(r.got))
        reordered += sum(1 for a, b in zip(r.got, r.got[1:], strict=False) if b < a)
    resumed = sum(len(r.recoveries) for r in recorders)
    not_recovered = sum(1 for r in recorders for info in r.recoveries if not info.recovered)
    row.counts = {
        "sent": sent * clients,
        "delivered": sum(len(r.got) for r in recorders),
        "lost": lost,
        "duplicated": dup,
        "reordered": reordered,
    }
    row.notes.append(
        f"{sent} room messages x {clients} clients; {resumed} resumes, "
        f"{not_recovered} not recovered"
    )
    row.ok = lost == 0 and dup == 0 and reordered == 0 and not_recovered == 0 and resumed > 0
    return row


async def _wait(predicate: Callable[[], bool], timeout: float, *, quiet: bool = False) -> None:
    """Poll ``predicate`` (client-side state, changed by many clients' tasks) until true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if quiet:
                return
            raise TimeoutError(f"not reached within {timeout:g} s")
        await asyncio.sleep(0.05)
