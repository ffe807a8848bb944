"""The chaos scenarios: each starts its own redis-servers and nodes, injects its fault while
traffic flows, and returns one row of the table."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from chaos.clients import (
    ROOM,
    Client,
    Latency,
    Tally,
    echo_loop,
    flood,
    metric,
    ready,
    receiver,
    redis_nodes,
    stream,
)
from chaos.procs import Node, Redis, node_args, rss_mb
from wsfleet import contract
from wsfleet.bus.codec import BusCodec, Serialization

FAST = ("--lease-ttl", "3", "--lease-refresh", "1", "--drain-grace", "5")


@dataclass
class Row:
    scenario: str
    load: str
    faults: str
    counts: dict[str, int] = field(default_factory=dict)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    rss_before: float = 0.0
    rss_after: float = 0.0
    notes: list[str] = field(default_factory=list)
    ok: bool = True


class Fleet:
    """Redis nodes, wsfleet nodes and client sessions of one scenario; all stopped at the end."""

    def __init__(self) -> None:
        self.redis: list[Redis] = []
        self.nodes: list[Node] = []
        self.clients: list[Client] = []
        self.session: aiohttp.ClientSession | None = None

    async def add_redis(self, count: int) -> list[Redis]:
        made = [Redis() for _ in range(count)]
        await asyncio.gather(*(r.start() for r in made))
        self.redis += made
        return made

    async def add_node(self, name: str, redis: list[Redis], *extra: str, **env: str) -> Node:
        node = Node(name, node_args(redis, *FAST, *extra), env)
        await node.start()
        self.nodes.append(node)
        assert self.session is not None
        await ready(self.session, node.internal)
        return node

    async def client(self, node: Node, socket_id: str) -> Client:
        assert self.session is not None
        client = await Client(self.session, node.url(socket_id)).open()
        self.clients.append(client)
        return client

    async def receiver(self, node: Node, socket_id: str, tally: Tally, event: str) -> Client:
        assert self.session is not None
        client = await receiver(self.session, node.url(socket_id), tally, event)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        await asyncio.gather(*(n.kill() for n in self.nodes), return_exceptions=True)
        await asyncio.gather(*(r.stop() for r in self.redis), return_exceptions=True)
        if self.session is not None:
            await self.session.close()


@contextlib.asynccontextmanager
async def fleet() -> AsyncIterator[Fleet]:
    f = Fleet()
    f.session = aiohttp.ClientSession()
    try:
        yield f
    finally:
        await f.close()


async def settle(tally: Tally, timeout: float = 15.0) -> None:
    """Wait until the receiver got every number sent (or ``timeout``: what is missing is lost)."""
    deadline = time.monotonic() + timeout
    while len(set(tally.got)) < tally.sent and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def control_set(redis: list[Redis], wanted: list[Redis]) -> None:
    """A ``redis.set`` as the operator sends it, published on every Redis node listed."""
    message = contract.redis_set([f"redis://{r.address}/0" for r in wanted], "chaos")
    data = BusCodec(Serialization.MSGPACK).dumps(message)
    for r in redis:
        await r.command("PUBLISH", contract.control_channel(), data)


async def flood_and_stream(seconds: float) -> Row:
    row = Row(
        "single-client flood + cross-node stream",
        f"1 client flooding node a for {seconds:.0f} s; 100 msg/s b->a room stream; echo RTT on a",
        "none (load only)",
    )
    async with fleet() as f:
        (r,) = await f.add_redis(1)
        a = await f.add_node("a", [r])
        b = await f.add_node("b", [r])
        tally, latency, stop = Tally(), Latency(), asyncio.Event()
        await f.receiver(a, "rx", tally, "said")
        sender = await f.receiver(b, "tx", Tally(), "said")
        healthy = await f.client(a, "healthy")
        flooder = await f.client(a, "flooder")
        await asyncio.sleep(1.0)  # both nodes listen on the room's channel
        row.rss_before = rss_mb(a.pid)
        tasks = [
            asyncio.create_task(stream(sender, tally, 100, stop)),
            asyncio.create_task(echo_loop(healthy, latency, stop)),
        ]
        flooding = asyncio.create_task(flood(flooder, stop))
        await asyncio.sleep(seconds)
        stop.set()
        frames = await asyncio.gather(flooding, return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        await settle(tally)
        row.rss_after = rss_mb(a.pid)
        row.counts = tally.row()
        row.p50_ms, row.p99_ms = latency.percentiles()
        row.notes.append(f"flood frames written: {frames[0]}")
        row.notes.append(f"echo timeouts: {latency.timeouts}")
        row.notes.append(f"subscriber drops on a: {a.log_count(b'subscriber failed')}")
        row.ok = row.counts["lost"] == 0
    return row


async def redis_kill_restart(outage: float) -> Row:
    row = Row(
        "Redis kill -9 / restart",
        "2 Redis, 2 nodes; 200 msg/s a->b room stream; echo RTT on b",
        f"kill -9 of one Redis, restarted after {outage:.0f} s",
    )
    async with fleet() as f:
        r1, r2 = await f.add_redis(2)
        a = await f.add_node("a", [r1, r2])
        b = await f.add_node("b", [r1, r2])
        tally, latency, stop = Tally(), Latency(), asyncio.Event()
        await f.receiver(b, "rx", tally, "said")
        sender = await f.receiver(a, "tx", Tally(), "said")
        healthy = await f.client(b, "healthy")
        await asyncio.sleep(1.0)
        row.rss_before = rss_mb(b.pid)
        tasks = [
            asyncio.create_task(stream(sender, tally, 200, stop)),
            asyncio.create_task(echo_loop(healthy, latency, stop)),
        ]
        await asyncio.sleep(2)
        await r1.kill()
        await asyncio.sleep(outage)
        await r1.start()
        await asyncio.sleep(4)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await settle(tally)
        row.rss_after = rss_mb(b.pid)
        row.counts = tally.row()
        row.p50_ms, row.p99_ms = latency.percentiles()
        row.ok = row.counts["lost"] == 0 and row.counts["duplicated"] == 0
    return row


async def rapid_hotplug() -> Row:
    row = Row(
        "rapid hot-plug",
        "2 Redis, 2 nodes; 200 msg/s a->b room stream; echo RTT on b",
        "redis.set [B], [A], [A,B] 0.5 s apart (within the 5 s drain grace)",
    )
    async with fleet() as f:
        r1, r2 = await f.add_redis(2)
        a = await f.add_node("a", [r1, r2])
        b = await f.add_node("b", [r1, r2])
        tally, latency, stop = Tally(), Latency(), asyncio.Event()
        await f.receiver(b, "rx", tally, "said")
        sender = await f.receiver(a, "tx", Tally(), "said")
        healthy = await f.client(b, "healthy")
        await asyncio.sleep(1.0)
        row.rss_before = rss_mb(b.pid)
        tasks = [
            asyncio.create_task(stream(sender, tally, 200, stop)),
            asyncio.create_task(echo_loop(healthy, latency, stop)),
        ]
        await asyncio.sleep(1)
        for wanted in ([r2], [r1], [r1, r2]):
            await control_set([r1, r2], wanted)
            await asyncio.sleep(0.5)
        await asyncio.sleep(7)  # beyond the drain grace
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await settle(tally)
        assert f.session is not None
        want = {f"{r.address}/0" for r in (r1, r2)}
        lists = [await redis_nodes(f.session, n.internal) for n in (a, b)]
        row.rss_after = rss_mb(b.pid)
        row.counts = tally.row()
        row.p50_ms, row.p99_ms = latency.percentiles()
        converged = all(found == want for found in lists)
        row.notes.append(f"converged to the last list on both nodes: {converged}")
        row.ok = converged and row.counts["lost"] == 0
    return row


async def outage_big_messages(outage: float, bound_mb: int) -> Row:
    row = Row(
        "Redis outage with 1 MB messages",
        f"broadcasts of 900 KB from a at 10/s; outage buffer bound {bound_mb} MB",
        f"the only Redis killed for {outage:.0f} s, then restarted",
    )
    async with fleet() as f:
        (r,) = await f.add_redis(1)
        bound = str(bound_mb * 1024 * 1024)
        a = await f.add_node("a", [r], "--outage-buffer-max-bytes", bound)
        b = await f.add_node("b", [r])
        tally, stop = Tally(), asyncio.Event()
        await f.receiver(b, "rx", tally, "announcement")
        sender = await f.client(a, "tx")
        await asyncio.sleep(1.0)
        row.rss_before = rss_mb(a.pid)
        pad = "x" * 900_000
        peak = row.rss_before
        refused = 0

        async def big_stream() -> None:
            nonlocal refused
            while not stop.is_set():
                n = tally.sent
                tally.sent += 1
                try:
                    answer = await sender.call("broadcast", {"n": n, "p": pad}, timeout=10)
                except (TimeoutError, ConnectionError):
                    answer = None
                if not (isinstance(answer, dict) and answer.get("ok")):
                    refused += 1
                await asyncio.sleep(0.1)

        task = asyncio.create_task(big_stream())
        await asyncio.sleep(1)
        await r.kill()
        deadline = time.monotonic() + outage
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(a.pid))
            await asyncio.sleep(0.25)
        await r.start()
        after_restart = len(b.output)
        for _ in range(40):
            peak = max(peak, rss_mb(a.pid))
            await asyncio.sleep(0.25)
        stop.set()
        await task
        await settle(tally, 30)
        row.rss_after = rss_mb(a.pid)
        row.counts = tally.row()
        assert f.session is not None
        dropped = int(await metric(f.session, a.internal, "wsfleet_bus_outage_dropped_total"))
        cut = sum(b"subscriber failed" in line for line in b.output[after_restart:])
        row.notes.append(
            f"peak RSS of a {peak:.0f} MB: +{peak - row.rss_before:.0f} MB over its baseline "
            f"(target: under the {bound_mb} MB bound + 50 MB)"
        )
        row.notes.append(
            f"{dropped} publishes refused by the byte bound (policy refuse-new) or expired; "
            f"lost beyond those: {row.counts['lost'] - dropped}"
        )
        row.notes.append(f"b's subscriber cut off after the restart (slow consumer): {cut}")
        row.ok = (
            peak - row.rss_before < bound_mb + 50
            and row.counts["lost"] == dropped
            and cut == 0
            and row.counts["reordered"] == 0
        )
    return row


async def restart_same_name() -> Row:
    row = Row(
        "restart under the same name",
        "1 node with an instance token; a client reconnects",
        "kill -9 of the node, restarted at once (same name, same token)",
    )
    async with fleet() as f:
        (r,) = await f.add_redis(1)
        token = {"WSFLEET_INSTANCE_TOKEN": "chaos-pod-uid"}
        node = await f.add_node("pod-0", [r], "--lease-ttl", "30", **token)
        row.rss_before = rss_mb(node.pid)
        await node.kill()
        started = time.monotonic()
        await node.start()
        assert f.session is not None
        await ready(f.session, node.internal)
        serving = time.monotonic() - started
        client = await f.client(node, "back")
        await client.call("echo", "hi")
        row.rss_after = rss_mb(node.pid)
        row.notes.append(f"serving again (readyz 200) {serving:.2f} s after the restart began")
        row.ok = serving < 2.0
    return row


__all__ = [
    "ROOM",
    "Row",
    "flood_and_stream",
    "outage_big_messages",
    "rapid_hotplug",
    "redis_kill_restart",
    "restart_same_name",
]
