"""Separate ``wsfleet serve`` processes on one Redis: crashes (kill -9) and name clashes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet
from tests.procs import NodeProcess, start_node
from tests.redis_procs import RedisProcess

from wsfleet.bus import Outcome

pytestmark = pytest.mark.integration

LEASE = ["--lease-ttl", "1.5", "--lease-refresh", "0.3", "--probe-interval", "0.5"]


async def test_a_killed_node_leaves_the_registry_calls_and_queries(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    procs: list[NodeProcess] = []
    try:
        for name in ("p1", "p2"):
            procs.append(
                await start_node(["--redis", redis.address, "--server-name", name, *LEASE])
            )
        (observer,) = await make_fleet([redis], 1, names=["observer"])
        victim = procs[1]
        client = await connect(victim.url(query="id=doomed"))
        await client.send('{"event":"join","payload":{"room":"lobby"},"callbackId":"j"}')
        assert (await client.recv()).startswith('{"payload":{"room":"lobby"')
        registry = observer.server.fleet.registry  # type: ignore[union-attr]
        async with asyncio.timeout(10):
            while set(observer.server.live_nodes()) != {"observer", "p1", "p2"}:
                await registry.refresh()
        assert await observer.server.cluster_online_count() == 1
        assert await observer.server.cluster_room_socket_ids("chat", "lobby") == {"doomed"}
        assert await observer.server.locate_socket("doomed") == "p2"

        # a call to every live node is under way when p2 dies without a goodbye
        call = asyncio.create_task(
            observer.server.emit_cross_server_async("nobody-answers", 1, mode="all", timeout=3)
        )
        await asyncio.sleep(0.1)
        victim.proc.send_signal(signal.SIGKILL)
        await victim.proc.wait()
        result = await call
        assert result.outcomes["p2"] is Outcome.LEFT
        assert result.outcomes["p1"] is Outcome.TIMED_OUT
        assert set(observer.server.live_nodes()) == {"observer", "p1"}
        assert await observer.server.cluster_online_count() == 0
        assert await observer.server.cluster_room_socket_ids("chat", "lobby") == set()
        assert await observer.server.locate_socket("doomed") is None
    finally:
        for proc in procs:
            if proc.proc.returncode is None:
                proc.proc.kill()
                await proc.proc.wait()


async def test_two_live_nodes_with_one_name_is_a_startup_error(redis: RedisProcess) -> None:
    first = await start_node(["--redis", redis.address, "--server-name", "twin", *LEASE])
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "wsfleet",
                "serve",
                "--port",
                "0",
                "--redis",
                redis.address,
                "--server-name",
                "twin",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert "another live node is already named 'twin'" in result.stderr
        assert "unique server name" in result.stderr
    finally:
        assert await first.stop() == 0
