"""SIGTERM to a node process with 500 connected clients: every client gets 1012, reconnects through
the balancer to the other node, no acked message is lost, and the process exits 0 in its window."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest
from tests.balancer import Backend, Balancer
from tests.fixtures.drain_app import LIST_KEY
from tests.procs import NodeProcess, start_node
from tests.redis_procs import RedisProcess

from wsfleet.client import Connector

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CLIENTS = 500
DRAIN = 4.0
AFTER_RECONNECT = 2  # acked messages each client sends after it moved


async def node(redis: RedisProcess, name: str) -> NodeProcess:
    return await start_node(
        [
            "--redis",
            redis.address,
            "--server-name",
            name,
            "--app",
            "tests.fixtures.drain_app:setup",
            "--drain-timeout",
            str(DRAIN),
            "--lease-refresh",
            "0.5",
            "--probe-interval",
            "0.5",
        ]
    )


class Client:
    def __init__(self, index: int, url: str) -> None:
        self.index = index
        self.codes: list[int | None] = []
        self.acked: list[int] = []
        self.connector = Connector(
            url,
            custom_params={"id": f"c{index}"},
            fast_reconnect_interval=0.3,
            ping_interval=30,
        )
        self.connector.on("close", lambda code, reason: self.codes.append(code))

    async def run(self, moved: asyncio.Event) -> None:
        """Send numbered messages, each until acked (again after a reconnect), until this client
        has moved and sent ``AFTER_RECONNECT`` more."""
        seq = 0
        after = 0
        while after < AFTER_RECONNECT:
            seq += 1
            while True:
                await self.connector.wait_open(timeout=30)
                result = await self.connector.emit_with_promise(
                    "put", {"c": self.index, "s": seq}, callback_timeout=5
                )
                if result["success"]:
                    break
            self.acked.append(seq)
            if self.codes:
                after += 1
            elif moved.is_set():
                await asyncio.sleep(0.01)
            else:
                await asyncio.sleep(0.2)


async def stored(redis: RedisProcess) -> set[tuple[int, int]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=redis.port)
    try:
        items = await client.lrange(LIST_KEY, 0, -1)
    finally:
        await client.aclose()
    return {(m["c"], m["s"]) for m in map(orjson.loads, items)}


async def test_sigterm_drains_500_clients_to_another_node_without_losing_acked_messages(
    redis: RedisProcess,
) -> None:
    a = await node(redis, "node-a")
    b = await node(redis, "node-b")
    balancer = Balancer()
    await balancer.start()
    backend_a = Backend(a.port, a.internal_url + "/readyz")
    balancer.add(backend_a)
    await balancer.wait_ready(backend_a)
    clients = [Client(i, balancer.url()) for i in range(CLIENTS)]
    runs: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(*(c.connector.connect() for c in clients))
        await asyncio.gather(*(c.connector.wait_open(timeout=30) for c in clients))
        assert balancer.routed == {a.port: CLIENTS}
        backend_b = Backend(b.port, b.internal_url + "/readyz")
        balancer.add(backend_b)
        await balancer.wait_ready(backend_b)

        moved = asyncio.Event()
        runs.extend(asyncio.create_task(c.run(moved)) for c in clients)
        async with asyncio.timeout(30):
            while sum(len(c.acked) for c in clients) < CLIENTS:  # everyone is talking
                failed = [t for t in runs if t.done()]
                if failed:
                    await failed[0]  # raises what went wrong
                await asyncio.sleep(0.05)
        started = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        moved.set()
        assert await a.wait(timeout=DRAIN + 10) == 0
        took = time.monotonic() - started
        assert took < DRAIN + 5, f"the drain took {took:.1f}s"
        async with asyncio.timeout(60):
            await asyncio.gather(*runs)
        runs = []

        assert all(c.codes[:1] == [1012] for c in clients), {
            tuple(c.codes) for c in clients if c.codes[:1] != [1012]
        }
        assert balancer.routed[b.port] == CLIENTS
        acked = {(c.index, s) for c in clients for s in c.acked}
        missing = acked - await stored(redis)
        assert not missing, f"{len(missing)} acked messages were not stored"
        assert b"drain: some bus messages" not in b"".join(a.output)
    finally:
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await asyncio.gather(*(c.connector.aclose() for c in clients), return_exceptions=True)
        await balancer.close()
        for proc in (a, b):
            if proc.proc.returncode is None:
                await proc.stop()
