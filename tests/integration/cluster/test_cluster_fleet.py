"""Three wsfleet nodes on a real Redis Cluster (3 masters + 3 replicas, sharded pub/sub)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, Node, join
from tests.redis_cluster import RedisCluster, cli

from wsfleet import contract
from wsfleet.bus.broker import CallbackHandler
from wsfleet.bus.cluster_link import ClusterLink
from wsfleet.bus.nodes import RedisNode
from wsfleet.server import ServerSettings

pytestmark = pytest.mark.integration


def link_of(node: Node) -> ClusterLink:
    links = list(node.server.fleet.bus.links.values())  # type: ignore[union-attr]
    assert len(links) == 1 and isinstance(links[0], ClusterLink)
    return links[0]


async def test_every_fleet_feature_across_three_nodes(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b, c = await make_fleet([redis_cluster], 3)
    assert a.server.fleet.registry.live_names() == {a.name, b.name, c.name}  # type: ignore[union-attr]
    on_b = await join(connect, b, "sb")
    on_c = await join(connect, c, "sc")

    a.server.broadcast("all", 1)
    assert await on_b.recv() == '{"event":"all","payload":1}'
    assert await on_c.recv() == '{"event":"all","payload":1}'

    a.server.to_socket_id("sc", "direct", 2)  # directory lookup, then the owner's inbox
    assert await on_c.recv() == '{"event":"direct","payload":2}'
    a.server.to_socket_ids(["sb", "sc"], "many", 3)
    assert await on_b.recv() == '{"event":"many","payload":3}'
    assert await on_c.recv() == '{"event":"many","payload":3}'

    await b.server.join_room_confirmed("chat", "r1", "sb")
    a.server.broadcast_to_room("chat", "r1", "room", 4)
    assert await on_b.recv() == '{"event":"room","payload":4}'

    @c.server.on_cross_server_event("ask")
    def ask(data: dict[str, Any], reply: Any) -> Any:
        return {"from": c.name}

    result = await a.server.emit_cross_server_with_promise(
        "ask", 1, expected_responses=1, target_server=c.name, timeout=5
    )
    assert result["success"] is True, result
    assert await a.server.cluster_online_count() == 2
    assert await a.server.cluster_room_ids("chat") == {"r1"}


async def test_a_node_subscribes_only_on_the_shards_its_channels_hash_to(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis_cluster], 1)
    link = link_of(a)
    before = {ch for chans in link.shards().values() for ch in chans}
    client = await join(connect, a, "s1")
    await a.server.join_room_confirmed("lobby", "r", "s1")
    shards = link.shards()
    after = {ch for chans in shards.values() for ch in chans}
    assert after - before == {"ws:lobby"}
    room_shard = next(addr for addr, chans in shards.items() if "ws:lobby" in chans)
    owner = redis_cluster.owner("ws:lobby")
    assert room_shard == f"127.0.0.1:{owner.port}"
    numsub = cli(owner.port, "pubsub", "shardnumsub", "ws:lobby").split()
    assert numsub[-1] == "1"
    a.server.leave_room("lobby", "r", "s1")
    await client.close()


async def test_a_link_closed_while_its_channels_change_leaves_no_task_behind(
    redis_cluster: RedisCluster,
) -> None:
    """The bus unsubscribes and subscribes while the link closes (a fleet closing): no shard
    subscriber may start after the close began, or its tasks outlive the link."""
    handler = CallbackHandler(lambda *a: None, lambda *a: None, lambda *a: None)
    link = ClusterLink(RedisNode.parse(redis_cluster.address), handler)
    link.set_channels({b"first"})
    link.start()
    async with asyncio.timeout(10):
        await link.wait_subscribed([b"first"])
    closing = asyncio.create_task(link.aclose())
    await asyncio.sleep(0)  # the close now waits for the link's tasks
    link.set_channels({f"ch{i}".encode() for i in range(30)})  # on every shard
    async with asyncio.timeout(10):
        await closing
    await asyncio.sleep(0)
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("wsfleet-")]
    assert left == []


async def test_a_master_killed_during_a_stream_loses_nothing_and_keeps_order(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis_cluster], 2)
    client = await join(connect, b, "victim")
    inbox = b.server.fleet.bus.inbox  # type: ignore[union-attr]
    master = redis_cluster.owner(inbox)
    total = 300
    try:
        for i in range(total):
            a.server.to_socket_id("victim", "seq", i)
            if i == 100:
                await asyncio.to_thread(master.kill)  # its replica is promoted
            await asyncio.sleep(0.005)
        received = [await client.recv(timeout=30) for _ in range(total)]  # buffered meanwhile
    finally:
        await asyncio.to_thread(master.start)  # back as a replica of the promoted node
        await asyncio.to_thread(redis_cluster.wait_ok)
    assert received == [f'{{"event":"seq","payload":{i}}}' for i in range(total)]


async def test_slots_migrated_during_a_stream_lose_nothing_and_keep_order(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    """Both slots of a direct message move while messages flow: the socket's directory key
    (``GET`` answered ``ASK`` by the old owner once the key moved, then ``MOVED``) and the
    owner's inbox (``SPUBLISH`` stays on the old owner until the slot is handed over)."""
    a, b = await make_fleet([redis_cluster], 2, names=["mig-a", "mig-b"])
    client = await join(connect, b, "moving")
    inbox = b.server.fleet.bus.inbox  # type: ignore[union-attr]
    socket_key = contract.socket_key("moving", b.server.fleet.settings.bridge_space)  # type: ignore[union-attr]
    sources = {k: redis_cluster.owner(k) for k in (inbox, socket_key)}
    masters = redis_cluster.masters()
    targets = {k: next(m for m in masters if m.port != s.port) for k, s in sources.items()}
    total, sent = 300, 0

    async def stream(until: int) -> None:
        nonlocal sent
        while sent < until:
            a.server.to_socket_id("moving", "seq", sent)
            sent += 1
            await asyncio.sleep(0.005)

    await stream(100)
    migrations = [
        await asyncio.to_thread(redis_cluster.begin_migration, k, t) for k, t in targets.items()
    ]
    await stream(200)  # the key is on its new owner, the slot not handed over yet: ASK
    assert link_of(a).asks > 0
    finishing = asyncio.gather(
        *(asyncio.to_thread(redis_cluster.finish_migration, m) for m in migrations)
    )
    await stream(total)  # handed over meanwhile: MOVED, then the new owner
    await finishing
    received = [await client.recv(timeout=30) for _ in range(total)]
    assert received == [f'{{"event":"seq","payload":{i}}}' for i in range(total)]
    assert redis_cluster.owner(inbox).port == targets[inbox].port
    assert link_of(b).shards().get(f"127.0.0.1:{targets[inbox].port}", []).count(inbox) == 1


async def test_a_drained_node_delivers_what_it_sent_and_leaves_the_registry(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet(
        [redis_cluster], 2, names=["drain-a", "drain-b"], settings=ServerSettings(drain_timeout=1.0)
    )
    on_a = await join(connect, a, "stays")
    on_b = [await join(connect, b, f"goes{i}") for i in range(5)]
    for i in range(50):
        b.server.to_socket_id("stays", "seq", i)
    drain = asyncio.create_task(b.server.drain())
    assert await asyncio.gather(*(c.closed() for c in on_b)) == [1012] * 5
    await asyncio.wait_for(drain, 10)
    received = [await on_a.recv() for _ in range(50)]
    assert received == [f'{{"event":"seq","payload":{i}}}' for i in range(50)]
    await wait_until(lambda: b.name not in a.server.live_nodes())
