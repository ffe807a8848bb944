"""Whole wsfleet nodes in one process on in-memory brokers (``memory://``): no Redis at all."""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.fleet.test_recovery import (
    RECOVERY,
    twenty_moves,
)

from wsfleet.bus import memory


@pytest.fixture(autouse=True)
def fresh_brokers() -> Iterator[None]:
    memory.forget_brokers()
    yield
    memory.forget_brokers()


def brokers(*names: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(address=f"memory://{name}") for name in names]


async def test_two_nodes_on_memory_brokers_route_directory_rooms_and_calls(
    make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet(brokers("f1", "f2"), 2)  # type: ignore[arg-type]
    assert a.server.fleet.registry.live_names() == {a.name, b.name}  # type: ignore[union-attr]
    client = await join(connect, b, "t")
    a.server.to_socket_id("t", "direct", 1)  # the socket directory's scripts, run as twins
    assert await client.recv() == '{"event":"direct","payload":1}'
    b.server.join_room("chat", "r", "t")
    await b.server.fleet.bus.wait_subscribed("ws:chat")  # type: ignore[union-attr]
    a.server.broadcast_to_room("chat", "r", "room", 2)
    assert await client.recv() == '{"event":"room","payload":2}'
    assert await a.server.cluster_online_count() == 1  # a cross-server call and its reply


async def test_a_memory_broker_killed_under_a_node_is_survived_by_the_other(
    make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet(brokers("k1", "k2"), 2)  # type: ignore[arg-type]
    client = await join(connect, b, "t")
    key = a.server.fleet.bus.link_for_key("t").node.host  # type: ignore[union-attr]
    memory.broker(key).kill()
    for i in range(20):
        a.server.to_socket_id("t", "seq", i)
    for i in range(20):
        assert await client.recv(timeout=10) == f'{{"event":"seq","payload":{i}}}'


async def test_recovery_runs_on_memory_brokers(
    make_fleet: MakeFleet,
    switch: Any,
) -> None:
    """Connection state recovery with no Redis: the broker's twins of the history scripts keep
    the streams. Twenty moves across the seam between replay and live, over two brokers."""
    nodes = await make_fleet(brokers("h1", "h2"), 3, settings=RECOVERY)  # type: ignore[arg-type]
    await twenty_moves(nodes, switch, random.Random(11))
    history = await nodes[1].server.room_history("feed", "main", limit=3)
    assert [e.event for e in history.entries] == ["tick"] * 3
