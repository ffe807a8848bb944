"""Several wsfleet nodes in one process, on real redis-server processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.conftest import Connect, RawClient
from tests.redis_procs import RedisProcess
from tests.switch import Switch

from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.server import Server, ServerSettings, UpgradeRequest

FAST = {
    "lease_refresh": 0.3,
    "lease_ttl": 1.5,
    "probe_interval": 0.5,
    "probe_timeout": 0.5,
    "command_timeout": 0.5,
    "redis_ping_interval": 0.3,
    "redis_ping_timeout": 0.3,
    "drain_grace": 0.3,
    "hot_add_grace": 3.0,
}


def by_id(request: UpgradeRequest) -> str | None:
    return request.param("id")


@dataclass
class Node:
    server: Server
    port: int
    received: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        assert self.server.server_name is not None
        return self.server.server_name

    def url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")


MakeFleet = Callable[..., Awaitable[list[Node]]]


@pytest.fixture
async def make_fleet() -> AsyncIterator[MakeFleet]:
    nodes: list[Node] = []

    async def make(
        redis: list[RedisProcess],
        count: int = 2,
        *,
        names: list[str] | None = None,
        settings: ServerSettings | None = None,
        **fleet: Any,
    ) -> list[Node]:
        made = []
        for i in range(count):
            name = names[i] if names else f"node{len(nodes) + 1}"
            options = {**FAST, **fleet}
            server = Server(
                settings,
                fleet=FleetSettings(
                    redis=tuple(RedisNode.parse(r.address) for r in redis),
                    server_name=name,
                    **options,
                ),
                authenticate=by_id,
            )
            port = await server.start("127.0.0.1", 0)
            node = Node(server, port)
            nodes.append(node)
            made.append(node)
        for node in made:
            await node.server.fleet.registry.refresh()  # type: ignore[union-attr]
        return made

    yield make
    for node in nodes:
        try:
            async with asyncio.timeout(20):
                await node.server.close()
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(limit=20)
            raise


async def join(connect: Connect, node: Node, socket_id: str) -> RawClient:
    client = await connect(node.url(f"id={socket_id}"))
    await client.send("")
    assert await client.recv() == ""
    return client


@pytest.fixture
async def switch() -> AsyncIterator[Callable[[int], Awaitable[Switch]]]:
    made: list[Switch] = []

    async def make(target: int) -> Switch:
        s = Switch(target)
        await s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        await s.aclose()
