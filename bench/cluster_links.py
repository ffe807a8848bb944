"""Publisher CPU per command on each kind of link, same run: ``python -m bench.cluster_links``.

Starts one ``redis-server`` and a 3-master Redis Cluster (no replicas) on loopback, then pushes
the same commands through :class:`~wsfleet.bus.redis_link.RedisLink` (our hiredis pipeline, one
node), :class:`~wsfleet.bus.cluster_link.ClusterLink` (redis-py's slot map, our hiredis publisher
per shard) and redis-py's own cluster pipeline (``RedisCluster.pipeline``), windows of 1000:
``PUBLISH`` / ``SPUBLISH`` of 100 B to channels spread over the slots, and the cluster-mode
direct message (``GET`` of a socket key, then ``SPUBLISH`` to the owner's inbox). It reports the
client process's CPU per command and the throughput, each the best of several rounds. These are
the coefficients ``c_pub`` of docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.redis_cluster import REDIS, Instance, cluster_port
from tests.redis_cluster import RedisCluster as TestCluster
from tests.redis_procs import server_argv

from wsfleet.bus.broker import BrokerLink, CallbackHandler, Command
from wsfleet.bus.cluster_link import ClusterLink
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.redis_py import RedisCluster


def _handler(up: asyncio.Event) -> CallbackHandler:
    def health(link: BrokerLink, role: str, healthy: bool, *_: object) -> None:
        if role == "publisher" and healthy:
            up.set()

    return CallbackHandler(lambda *a: None, health, lambda *a: None)


async def _ready(link: BrokerLink, up: asyncio.Event) -> None:
    link.start()
    async with asyncio.timeout(20):
        await up.wait()
    link.admitted = True  # what the bus does once every node listens (a cluster link waits for it)


async def _round(link: BrokerLink, commands: list[tuple[Any, ...]]) -> tuple[float, float]:
    """(CPU seconds per command, commands per second) for one round, 1000 in flight at most."""
    loop = asyncio.get_running_loop()
    cpu0, t0 = time.process_time(), time.perf_counter()
    window = 1000
    for start in range(0, len(commands), window):
        futures = []
        for args in commands[start : start + window]:
            future: asyncio.Future[Any] = loop.create_future()
            link.submit(Command(args, future))
            futures.append(future)
        await asyncio.gather(*futures)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return cpu / len(commands), len(commands) / wall


async def _redis_py_round(rc: Any, commands: list[tuple[Any, ...]]) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    for start in range(0, len(commands), 1000):
        pipe = rc.pipeline(transaction=False)
        for args in commands[start : start + 1000]:
            pipe.execute_command(*(("SPUBLISH", *args[1:]) if args[0] == "PUBLISH" else args))
        await pipe.execute()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return cpu / len(commands), len(commands) / wall


async def measure(count: int, rounds: int) -> dict[str, tuple[float, float]]:
    assert REDIS is not None
    with tempfile.TemporaryDirectory() as work:
        single = Instance(cluster_port(), server_argv(REDIS, 0, work))
        single.argv = server_argv(REDIS, single.port, work)
        single.start()
        cluster = TestCluster(Path(work) / "c")
        (Path(work) / "c").mkdir()
        try:
            cluster.start(count=3, replicas=0)
            one_up, sharded_up = asyncio.Event(), asyncio.Event()
            one = RedisLink(RedisNode.parse(f"127.0.0.1:{single.port}"), _handler(one_up))
            sharded = ClusterLink(RedisNode.parse(cluster.address), _handler(sharded_up))
            await _ready(one, one_up)
            await _ready(sharded, sharded_up)
            payload = b"x" * 100
            publishes = [("PUBLISH", f"ws:room{i % 512}", payload) for i in range(count)]
            direct = [
                args
                for i in range(count // 2)
                for args in (("GET", f"csbp:wsfleet:sock:s{i % 512}"), publishes[i])
            ]
            rc = RedisCluster.from_url(f"redis://127.0.0.1:{cluster.instances[0].port}")
            await rc.initialize()
            cases: dict[str, tuple[Any, list[tuple[Any, ...]]]] = {
                "RedisLink (hiredis), PUBLISH, 1 node": (one, publishes),
                "ClusterLink (hiredis/shard), SPUBLISH, 3 shards": (sharded, publishes),
                "redis-py cluster pipeline, SPUBLISH, 3 shards": (rc, publishes),
                "RedisLink (hiredis), GET+PUBLISH, 1 node": (one, direct),
                "ClusterLink (hiredis/shard), GET+SPUBLISH": (sharded, direct),
                "redis-py cluster pipeline, GET+SPUBLISH": (rc, direct),
            }
            best: dict[str, tuple[float, float]] = {}
            for _ in range(rounds):
                for name, (link, commands) in cases.items():
                    if link is rc:
                        cpu, rate = await _redis_py_round(rc, commands)
                    else:
                        cpu, rate = await _round(link, commands)
                    old = best.get(name)
                    best[name] = (min(cpu, old[0]), max(rate, old[1])) if old else (cpu, rate)
            await one.aclose()
            await sharded.aclose()
            await rc.aclose()
            return best
        finally:
            cluster.stop()
            single.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    results = asyncio.run(measure(a.count, a.rounds))
    print(f"{'link and commands':48} {'CPU µs/command':>15} {'commands/s':>12}")
    for name, (cpu, rate) in results.items():
        print(f"{name:48} {cpu * 1e6:15.1f} {rate:12,.0f}")


if __name__ == "__main__":
    main()
