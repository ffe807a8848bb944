"""Three wsfleet nodes on a real Redis Cluster (3 masters + 3 replicas, sharded pub/sub)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, Node, join
from tests.redis_cluster import RedisCluster, cli

from wsfleet import contract
from wsfleet.bus import cluster_keys
from wsfleet.bus.broker import CallbackHandler
from wsfleet.bus.cluster_link import ClusterLink
from wsfleet.bus.lease_budget import check_lease_budget
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.slots import key_slot
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
    assert after - before == {"ws:lobby#r"}  # the room's own channel
    room_shard = next(addr for addr, chans in shards.items() if "ws:lobby#r" in chans)
    owner = redis_cluster.owner("ws:lobby#r")
    assert room_shard == f"127.0.0.1:{owner.port}"
    numsub = cli(owner.port, "pubsub", "shardnumsub", "ws:lobby#r").split()
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
    """The master of the receiver's inbox dies; the messages sent during the failover are held
    and arrive, in order, once its replica took over.

    The kill comes when Redis answered everything sent before it: a message Redis acknowledged
    in the instant it was killed may not have reached the subscriber yet, and pub/sub keeps
    nothing (docs/scaling.md). The socket's lease outlives the failover, as it must in
    production (a lease on the failed shard cannot be refreshed until the replica took over)."""
    a, b = await make_fleet([redis_cluster], 2, lease_ttl=15.0)
    client = await join(connect, b, "victim")
    inbox = b.server.fleet.bus.inbox  # type: ignore[union-attr]
    master = redis_cluster.owner(inbox)
    total, before = 300, 100
    try:
        for i in range(before):
            a.server.to_socket_id("victim", "seq", i)
            await asyncio.sleep(0.005)
        received = [await client.recv(timeout=10) for _ in range(before)]
        await asyncio.to_thread(master.kill)  # its replica is promoted
        for i in range(before, total):
            a.server.to_socket_id("victim", "seq", i)
            await asyncio.sleep(0.005)
        received += [await client.recv(timeout=30) for _ in range(before, total)]
    finally:
        await asyncio.to_thread(master.start)  # back as a replica of the promoted node
        await asyncio.to_thread(redis_cluster.wait_ok)
    assert received == [f'{{"event":"seq","payload":{i}}}' for i in range(total)]


async def test_leases_on_the_other_shards_are_refreshed_while_one_shard_fails_over(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    """A failover stops publishing (the cluster link waits until every shard is back) but not
    the lease refreshes: a socket's location and a node's registry entry on a healthy shard
    stay, even when the failover lasts longer than the lease."""
    a, b = await make_fleet([redis_cluster], 2, lease_ttl=0.6, lease_refresh=0.15)
    space = b.server.fleet.settings.bridge_space  # type: ignore[union-attr]
    registry_key = cluster_keys.registry_keys(space, b.name)[0]
    home = redis_cluster.owner(registry_key)
    spans = [(lo, hi) for m, lo, hi in redis_cluster.slot_spans() if m.port == home.port]
    socket_id = next(
        f"s{i}"
        for i in range(10_000)
        if any(
            lo <= key_slot(contract.socket_key(f"s{i}", space).encode()) <= hi for lo, hi in spans
        )
    )
    await join(connect, b, socket_id)
    socket_key = contract.socket_key(socket_id, space)
    victim = next(m for m in redis_cluster.masters() if m.port != home.port)
    missing: list[str] = []
    watcher = Redis(host="127.0.0.1", port=home.port)

    async def watch() -> None:
        while True:
            for key in (socket_key, registry_key):
                if not await watcher.exists(key):
                    missing.append(key)
            await asyncio.sleep(0.05)

    watching = asyncio.create_task(watch())
    try:
        await asyncio.to_thread(victim.kill)
        await wait_until(lambda: not link_of(b).publisher_healthy, timeout=10)
        await wait_until(lambda: link_of(b).admitted, timeout=30)  # the replica took over
    finally:
        watching.cancel()
        await watcher.aclose()
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(redis_cluster.wait_ok)
    assert missing == []
    assert b.name in a.server.live_nodes()


async def test_slots_migrated_during_a_stream_lose_nothing_and_keep_order(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    """Both slots of a direct message move while messages flow: the socket's directory key
    (``GET`` answered ``ASK`` by the old owner once the key moved, then ``MOVED``) and the
    owner's inbox (``SPUBLISH`` stays on the old owner until the slot is handed over)."""
    await asyncio.to_thread(redis_cluster.wait_ok)  # every node agrees on who is master
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

    def finish_all() -> None:  # one after the other: two hand-overs at once can collide
        for migration in migrations:
            redis_cluster.finish_migration(migration)

    finishing = asyncio.to_thread(finish_all)
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


async def test_a_lease_shorter_than_a_failover_is_named_at_start(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, caplog: pytest.LogCaptureFixture
) -> None:
    """The test cluster fails over after ``cluster-node-timeout`` 1 s plus an election."""
    caplog.set_level(logging.WARNING, logger="wsfleet.bus")
    (short,) = await make_fleet([redis_cluster], 1, names=["short-lease"], lease_ttl=1.5)
    (long,) = await make_fleet([redis_cluster], 1, names=["long-lease"], lease_ttl=15.0)

    def warned(name: str) -> bool:
        return any(
            f"node {name}: lease_ttl" in r.getMessage() and "Set lease_ttl to 3 s" in r.getMessage()
            for r in caplog.records
        )

    await wait_until(lambda: warned(short.name))
    assert await check_lease_budget(link_of(long), 15.0, timeout=5) is None
    assert not warned(long.name)


async def test_a_node_listens_only_to_the_rooms_of_its_own_members(
    redis_cluster: RedisCluster, make_fleet: MakeFleet, connect: Connect
) -> None:
    """Each room has its own sharded channel: a node subscribes to the rooms its sockets are
    in (its subscriptions grow with its own rooms, not the fleet's), and a room's messages go
    only to the nodes that listen to it."""
    a, b, c = await make_fleet([redis_cluster], 3, names=["pr-a", "pr-b", "pr-c"])
    member = await join(connect, b, "member")
    settings = b.server.fleet.settings  # type: ignore[union-attr]
    rooms = [f"r{i}" for i in range(20)]
    for room in rooms:
        await b.server.join_room_confirmed("chat", room, "member")
    channels = [settings.room_channel_of("chat", room) for room in rooms]

    async def listeners(channel: str) -> int:
        reply = await link_of(a).call("PUBSUB", "NUMSUB", channel)
        return int(reply[1])

    def room_channels(node: Node) -> set[bytes]:
        prefix = (settings.room_channel("chat") + "#").encode()
        return {w for w in node.server.fleet.bus.channels.wanted if w.startswith(prefix)}  # type: ignore[union-attr]

    assert room_channels(b) == {ch.encode() for ch in channels}
    assert room_channels(a) == room_channels(c) == set()
    assert [await listeners(ch) for ch in channels] == [1] * 20  # b only

    received_by_c = c.server.fleet.bus.stats.received_by_kind["room"]  # type: ignore[union-attr]
    a.server.broadcast_to_room("chat", "r3", "hello", 1)
    assert await member.recv() == '{"event":"hello","payload":1}'
    await a.server.fleet.flush(5.0)  # type: ignore[union-attr]
    assert c.server.fleet.bus.stats.received_by_kind["room"] == received_by_c  # type: ignore[union-attr]

    for room in rooms:
        b.server.leave_room("chat", room, "member")
    assert room_channels(b) == set()
    async with asyncio.timeout(10):  # Redis does not announce it: ask until it says so
        while [await listeners(ch) for ch in channels] != [0] * 20:
            await asyncio.sleep(0.05)
