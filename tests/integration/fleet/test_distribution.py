"""Broadcasts, rooms and direct messages reach clients on every node (spec §6, §10 items 7-12)."""

from __future__ import annotations

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.integration


async def test_broadcast_reaches_every_node(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b, c = await make_fleet([redis], 3)
    clients = [await join(connect, node, f"u{i}") for i, node in enumerate((a, b, c))]
    assert a.server.broadcast("news", {"n": 1}) == 1
    for client in clients:
        assert await client.recv() == '{"event":"news","payload":{"n":1}}'


async def test_local_only_broadcast_stays_on_its_node(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    ca, cb = await join(connect, a, "a1"), await join(connect, b, "b1")
    a.server.broadcast("local", 1, local_only=True)
    b.server.broadcast("marker", 2)
    assert await ca.recv() == '{"event":"local","payload":1}'
    assert await cb.recv() == '{"event":"marker","payload":2}'  # never saw "local"


async def test_direct_message_goes_only_to_the_node_holding_the_socket(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b, c = await make_fleet([redis], 3)
    target = await join(connect, b, "target")
    await a.server.fleet.registry.refresh()  # type: ignore[union-attr]
    assert await a.server.locate_socket("target") == b.name
    before_c = c.server.fleet.bus.stats.received  # type: ignore[union-attr]
    for i in range(20):
        assert a.server.to_socket_id("target", "dm", i)
    for i in range(20):
        assert await target.recv() == f'{{"event":"dm","payload":{i}}}'
    # the third node never heard of these messages: they went to b's inbox only
    assert c.server.fleet.bus.stats.received - before_c < 5  # type: ignore[union-attr]


async def test_unknown_socket_falls_back_to_the_shared_channel(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a, b) = await make_fleet([redis], 2)
    client = await join(connect, b, "late")
    # forget b's location record, as if it was written by an original node (no directory)
    await redis.command("DEL", "csbp:wsfleet:sock:late")
    a.server.to_socket_id("late", "hello", "via shared channel")
    assert await client.recv() == '{"event":"hello","payload":"via shared channel"}'


async def test_to_socket_ids_across_nodes(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    a1, b1, b2 = (
        await join(connect, a, "a1"),
        await join(connect, b, "b1"),
        await join(connect, b, "b2"),
    )
    assert a.server.to_socket_ids(["a1", "b1", "b2", "ghost"], "multi", [1]) == 1
    for client in (a1, b1, b2):
        assert await client.recv() == '{"event":"multi","payload":[1]}'


async def test_room_broadcast_reaches_members_on_every_node_minus_excluded(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    a1, b1, b2 = (
        await join(connect, a, "a1"),
        await join(connect, b, "b1"),
        await join(connect, b, "b2"),
    )
    outsider = await join(connect, b, "out")
    a.server.join_room("game", "r1", "a1")
    b.server.join_room("game", "r1", "b1")
    b.server.join_room("game", "r1", "b2")
    b.server.join_room("game", "r2", "out")
    await b.server.fleet.bus.wait_subscribed("ws:game")  # type: ignore[union-attr]
    a.server.broadcast_to_room("game", "r1", "move", {"x": 1}, exclude=["b2"])
    assert await a1.recv() == '{"event":"move","payload":{"x":1}}'
    assert await b1.recv() == '{"event":"move","payload":{"x":1}}'
    b.server.broadcast("sync", 0)
    for client in (b2, outsider):  # b2 was excluded, "out" is in another room
        assert await client.recv() == '{"event":"sync","payload":0}'


async def test_w5_room_messages_keep_their_order_with_several_redis_nodes(
    redis_factory, make_fleet: MakeFleet, connect: Connect
) -> None:
    redis_nodes = [await redis_factory() for _ in range(3)]
    a, b = await make_fleet(redis_nodes, 2)  # default strategy: hash by target
    member = await join(connect, b, "m")
    b.server.join_room("chat", "lobby", "m")
    await b.server.fleet.bus.wait_subscribed("ws:chat")  # type: ignore[union-attr]
    for i in range(300):
        a.server.broadcast_to_room("chat", "lobby", "line", i)
    received = [await member.recv() for _ in range(300)]
    assert received == [f'{{"event":"line","payload":{i}}}' for i in range(300)]


async def test_duplicate_login_on_another_node_closes_the_older_socket(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    old = await join(connect, a, "u1")
    assert await a.server.locate_socket("u1") == a.name
    new = await join(connect, b, "u1")
    assert await old.closed() == 4012
    assert a.server.get_socket("u1") is None
    assert await a.server.locate_socket("u1") == b.name
    a.server.to_socket_id("u1", "hi", 1)  # routed to the newer login on b
    assert await new.recv() == '{"event":"hi","payload":1}'
