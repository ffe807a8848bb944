"""The cost of a room join on a node that holds many rooms: ``python -m bench.subscriptions``.

On a Redis Cluster every room a node's members are in is a channel of its own (per-room channels,
docs/scaling.md), so a node of a large fleet holds thousands of subscriptions and changes them
with every first join and last leave. This starts a Redis Cluster of ``--shards`` masters on
loopback (``tests/redis_cluster.py``) and one wsfleet node in this process, fills it with
``--rooms`` rooms (one member each), then joins and leaves ``--churn`` more rooms, one at a time,
each join awaited until Redis confirmed the subscription (``join_room_confirmed``). It prints the
node's CPU per join + leave (``time.process_time``, this process: the node's Python, the
link's reconcile and its socket writes) and the wall time of a confirmed join, at each size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.micro import open_socket
from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.server import Server, ServerSettings


async def _measure(address: str, sizes: list[int], churn: int) -> list[tuple[int, float, float]]:
    server = Server(
        ServerSettings(),
        fleet=FleetSettings(redis=(RedisNode.parse(address),), server_name="sub-bench"),
    )
    await server.start("127.0.0.1", 0)
    member = open_socket(server, "m")  # one member of every room, on a stub transport
    rows: list[tuple[int, float, float]] = []
    try:
        deadline = time.monotonic() + 30
        while not server.is_ready:
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not become ready on the cluster in 30 s")
            await asyncio.sleep(0.05)
        held = 0
        for size in sizes:
            while held < size:
                server.join_room("bench", f"held-{held}", "m")
                held += 1
            await server.join_room_confirmed("bench", f"held-{held - 1}", "m", timeout=60.0)
            walls: list[float] = []
            cpu0 = time.process_time()
            for i in range(churn):
                t0 = time.perf_counter()
                await server.join_room_confirmed("bench", f"churn-{i}", "m", timeout=10.0)
                walls.append(time.perf_counter() - t0)
                server.leave_room("bench", f"churn-{i}", "m")
            cpu = (time.process_time() - cpu0) / churn
            rows.append((size, cpu * 1e6, statistics.median(walls) * 1e3))
    finally:
        member.detach()  # the stub transport cannot be closed like a connection
        await server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.subscriptions", description=__doc__)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--rooms", default="100,1000,10000", help="sizes, comma-separated")
    parser.add_argument("--churn", type=int, default=300, help="rooms joined and left per size")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.rooms.split(","))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_cluster import RedisCluster

    with tempfile.TemporaryDirectory(prefix="wsfleet-bench-subs-") as workdir:
        cluster = RedisCluster(Path(workdir))
        try:
            cluster.start(count=args.shards, replicas=0)
            try:
                import uvloop
            except ImportError:
                rows = asyncio.run(_measure(cluster.address, sizes, args.churn))
            else:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    rows = runner.run(_measure(cluster.address, sizes, args.churn))
        finally:
            cluster.stop()
    print(f"{'rooms held':>11} {'CPU µs per join+leave':>22} {'confirmed join p50 (ms)':>24}")
    for size, cpu, wall in rows:
        print(f"{size:>11,} {cpu:>22.1f} {wall:>24.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
