"""Connection state recovery on a real Redis Cluster: room streams live in their channel's slot
(one script appends and publishes), a socket's stream in its own slot (appended, then routed)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tests.integration.fleet.conftest import MakeFleet
from tests.integration.fleet.test_recovery import (
    RECOVERY,
    moved_misses_nothing,
    twenty_moves,
)
from tests.redis_cluster import RedisCluster

from wsfleet.bus.slots import key_slot

pytestmark = pytest.mark.integration


async def test_a_client_moved_to_another_node_misses_nothing_on_a_cluster(
    redis_cluster: RedisCluster,
    make_fleet: MakeFleet,
    switch: Any,
) -> None:
    nodes = await make_fleet([redis_cluster], 3, settings=RECOVERY, lease_ttl=15.0)
    await moved_misses_nothing(nodes, switch, "cr1", "network-cut")
    source = nodes[2]
    history = source.server.recovery.history  # type: ignore[union-attr]
    room, direct = history.room("feed", "main"), history.direct("cr1")
    channel = source.server.fleet.settings.room_channel_of("feed", "main")  # type: ignore[union-attr]
    assert key_slot(room.stream.encode()) == key_slot(channel.encode())
    assert key_slot(direct.stream.encode()) == key_slot(direct.epoch_key.encode())


async def test_room_history_reads_on_a_cluster(
    redis_cluster: RedisCluster, make_fleet: MakeFleet
) -> None:
    a, b = await make_fleet([redis_cluster], 2, settings=RECOVERY, lease_ttl=15.0)
    for n in range(5):
        a.server.broadcast_to_room("feed", "hist", "tick", {"n": n})
    await a.server.fleet.flush(5.0)  # type: ignore[union-attr]
    last = await b.server.room_history("feed", "hist", limit=3)
    assert [(e.event, e.payload) for e in last.entries] == [("tick", {"n": n}) for n in (2, 3, 4)]
    after = await b.server.room_history("feed", "hist", since=last.entries[0].position)
    assert [e.payload["n"] for e in after.entries] == [3, 4]


async def test_the_seam_between_replay_and_live_on_a_cluster(
    redis_cluster: RedisCluster,
    make_fleet: MakeFleet,
    switch: Any,
) -> None:
    nodes = await make_fleet([redis_cluster], 3, settings=RECOVERY, lease_ttl=15.0)
    await twenty_moves(nodes, switch, random.Random(5))
