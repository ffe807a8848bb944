"""Redis failures: killed, restarted, frozen, buffered through an outage - with no silent loss."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import Connect, RawClient
from tests.integration.fleet.conftest import MakeFleet, Node, join
from tests.redis_procs import RedisProcess

from wsfleet.bus import BusUnavailableError

pytestmark = pytest.mark.integration


async def expect_sequence(client: RawClient, count: int, event: str = "seq") -> None:
    for i in range(count):
        assert await client.recv(timeout=10) == f'{{"event":"{event}","payload":{i}}}'


def link_of(node: Node, key: str) -> str:
    link = node.server.fleet.bus.link_for_key(key)  # type: ignore[union-attr]
    assert link is not None
    return link.key


async def test_killing_and_restarting_a_redis_node_mid_stream_loses_nothing(
    redis_factory, make_fleet: MakeFleet, connect: Connect
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    a, b = await make_fleet([r1, r2], 2)
    target = await join(connect, b, "target")
    victim = r1 if link_of(a, "target").endswith(f":{r1.port}/0") else r2
    reader = asyncio.create_task(expect_sequence(target, 400))
    for i in range(400):
        a.server.to_socket_id("target", "seq", i)
        if i == 100:
            await victim.kill()
        if i == 250:
            await victim.start()
        await asyncio.sleep(0.002)
    # Known limit of Redis pub/sub (see wsfleet.bus.bus): a PUBLISH that the victim acknowledged
    # in the microseconds before SIGKILL, but had not yet written to the subscriber's socket, is
    # lost and cannot be retried. Never observed here; every loss seen so far had a bus cause.
    await asyncio.wait_for(reader, 20)
    stats = a.server.fleet.bus.stats  # type: ignore[union-attr]
    assert stats.publish_failures == 0


async def test_w4_outage_buffer_holds_publishes_until_redis_returns(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    member = await join(connect, b, "m")
    b.server.join_room("chat", "r", "m")
    await b.server.fleet.bus.wait_subscribed("ws:chat")  # type: ignore[union-attr]
    bus = a.server.fleet.bus  # type: ignore[union-attr]
    await redis.kill()
    while bus.usable_links():
        await asyncio.sleep(0.01)
    for i in range(50):
        a.server.broadcast_to_room("chat", "r", "seq", i)
    assert len(bus.outage) >= 40  # (a few may have been in flight and are retried)
    await redis.start()
    await b.server.fleet.bus.wait_subscribed("ws:chat")  # type: ignore[union-attr]
    await expect_sequence(member, 50)
    assert bus.stats.publish_failures == 0


async def test_outage_buffer_overflow_is_reported_to_the_caller(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    (a,) = await make_fleet([redis], 1, outage_buffer_size=5)
    bus = a.server.fleet.bus  # type: ignore[union-attr]
    await redis.kill()
    while bus.usable_links():
        await asyncio.sleep(0.01)
    futures = [bus.publish("c", {"n": i}, "k", want_result=True) for i in range(7)]
    assert bus.outage.refused == 2 and bus.stats.outage_refused == 2
    for future in futures[5:]:
        assert future is not None
        with pytest.raises(BusUnavailableError, match="outage buffer is full"):
            await future
    await redis.start()
    for future in futures[:5]:
        assert future is not None
        assert await asyncio.wait_for(future, 10) == 0  # delivered (no subscriber on "c")


async def test_w4_a_frozen_redis_node_is_detected_and_traffic_moves(
    redis_factory, make_fleet: MakeFleet, connect: Connect
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    a, b = await make_fleet([r1, r2], 2)
    target = await join(connect, b, "t")
    frozen = r1 if link_of(a, "t").endswith(f":{r1.port}/0") else r2
    bus = a.server.fleet.bus  # type: ignore[union-attr]
    frozen.pause()
    try:
        for i in range(30):
            a.server.to_socket_id("t", "seq", i)
        await expect_sequence(target, 30)  # re-routed after the command timeout
        results = await bus.probe_all()
        assert results[f"127.0.0.1:{frozen.port}/0"] is None
        assert bus.stats.probes_failed >= 1
        assert not a.server.fleet.bus.links[f"127.0.0.1:{frozen.port}/0"].publisher_healthy  # type: ignore[union-attr]
    finally:
        frozen.resume()
    async with asyncio.timeout(10):
        while len(bus.usable_links()) < 2:
            await asyncio.sleep(0.02)


async def test_hot_add_and_remove_under_load_loses_nothing(
    redis_factory, make_fleet: MakeFleet, connect: Connect
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    a, b = await make_fleet([r1], 2)
    member = await join(connect, b, "m")
    b.server.join_room("chat", "r", "m")
    await b.server.fleet.bus.wait_subscribed("ws:chat")  # type: ignore[union-attr]
    reader = asyncio.create_task(expect_sequence(member, 600))

    async def load() -> None:
        for i in range(600):
            a.server.broadcast_to_room("chat", "r", "seq", i)
            await asyncio.sleep(0.002)

    loader = asyncio.create_task(load())
    await asyncio.sleep(0.2)
    await asyncio.gather(*(n.server.add_redis_instance(r2.address) for n in (a, b)))
    assert all(n.server.get_redis_instances_count() == 2 for n in (a, b))
    await asyncio.sleep(0.2)
    await asyncio.gather(*(n.server.remove_redis_instance(r1.address) for n in (a, b)))
    await loader
    await asyncio.wait_for(reader, 20)
    assert a.server.fleet.bus.stats.publish_failures == 0  # type: ignore[union-attr]
    assert await r1.numsub("ws:chat") == 0


async def test_hot_add_by_control_message_and_by_watched_directory(
    redis_factory, make_fleet: MakeFleet, tmp_path
) -> None:
    r1, r2, r3 = await redis_factory(), await redis_factory(), await redis_factory()
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "redis").write_text(f"{r1.address}\n")
    a, b = await make_fleet([], 2, config_dir=config, config_poll_interval=0.1)
    assert {n.server.get_redis_instances_count() for n in (a, b)} == {1}
    # a control message on the bus: every node adds r2
    await a.server.add_redis_instance(r2.address, everywhere=True)
    async with asyncio.timeout(10):
        while b.server.get_redis_instances_count() != 2:
            await asyncio.sleep(0.02)
    # the mounted ConfigMap changes: r3 replaces r1 and r2
    (config / "redis").write_text(f"# updated\n{r3.address}\n")
    async with asyncio.timeout(15):
        while {tuple(n.server.fleet.bus.links) for n in (a, b)} != {(f"127.0.0.1:{r3.port}/0",)}:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.lists(st.binary(max_size=200), min_size=1, max_size=5))
async def test_garbage_on_every_channel_never_breaks_a_node(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, garbage: list[bytes]
) -> None:
    global _fleet
    if _fleet is None or _fleet[0] is not redis:
        nodes = await make_fleet([redis], 1, preset_room_namespaces=("game",))
        _fleet = (redis, nodes[0], await join(connect, nodes[0], "victim"))
    _, node, client = _fleet
    channels = [
        "csbp:server_bridge",
        "ws:private_socket",
        "ws:broadcast",
        "ws:game",
        f"csbp:wsfleet:node:{node.name}",
        "csbp:wsfleet:control",
    ]
    import msgpack

    samples = [
        *garbage,
        msgpack.packb({"data": {"isCallback": True}}),
        msgpack.packb({"data": 5, "socketIds": "x"}),
        msgpack.packb([1, 2]),
    ]
    for channel in channels:
        for sample in samples:
            await redis.command("PUBLISH", channel, sample.decode("latin-1"))
    node.server.to_socket_id("victim", "still", "alive")
    while True:
        frame = await client.recv()
        if frame == '{"event":"still","payload":"alive"}':
            break


_fleet = None
