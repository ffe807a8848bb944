"""A node that closes while Redis nodes are being hot-added leaves no Redis connection behind
(counted with CLIENT LIST on a real redis-server) and no task running."""

from __future__ import annotations

import asyncio

from tests.integration.fleet.conftest import MakeFleet
from tests.redis_procs import RedisProcess

from wsfleet import contract
from wsfleet.bus.nodes import RedisNode
from wsfleet_operator import constants as c
from wsfleet_operator import redis_probe
from wsfleet_operator.model import RedisNodeSpec


async def wsfleet_clients(redis: RedisProcess) -> int:
    """Connections named ``wsfleet`` (what every RedisLink connection calls itself)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", redis.port)
    writer.write(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
    await writer.drain()
    header = await reader.readline()
    assert header.startswith(b"$"), header
    body = await reader.readexactly(int(header[1:]) + 2)
    writer.close()
    await writer.wait_closed()
    return sum(1 for line in body.decode().splitlines() if " name=wsfleet " in f" {line} ")


def bus_tasks() -> list[str]:
    return [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith(("wsfleet-admit", "wsfleet-redis", "wsfleet-bus"))
    ]


async def test_a_redis_add_after_the_bus_closed_opens_no_connection(
    redis_factory, make_fleet: MakeFleet
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    (node,) = await make_fleet([r1], 1)
    bus = node.server.fleet.bus  # type: ignore[union-attr]
    await node.server.close()
    assert await bus.add_redis_node(RedisNode.parse(r2.address)) is False
    assert not bus.links
    assert await wsfleet_clients(r1) == 0 and await wsfleet_clients(r2) == 0
    assert bus_tasks() == []


async def test_closing_while_a_redis_add_waits_for_the_fleet_leaves_no_connection(
    redis_factory, make_fleet: MakeFleet
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    a, _b = await make_fleet([r1], 2, hot_add_grace=30.0)
    fleet = a.server.fleet
    assert fleet is not None
    # b never adds r2, so a's add waits for b (up to hot_add_grace) with a live link to r2
    adding = asyncio.create_task(fleet.control.add_redis_node(RedisNode.parse(r2.address)))
    async with asyncio.timeout(10):
        while await wsfleet_clients(r2) < 2:  # publisher and subscriber
            await asyncio.sleep(0.01)
    assert not adding.done()
    async with asyncio.timeout(10):
        await a.server.close()
    assert await asyncio.wait_for(adding, 5) is False
    assert await wsfleet_clients(r2) == 0
    assert [name for name in bus_tasks() if a.name in name] == []


async def test_a_redis_add_control_message_racing_a_close_leaves_no_connection(
    redis_factory, make_fleet: MakeFleet
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    (node,) = await make_fleet([r1], 1)
    message = redis_probe.encode_control(
        contract.redis_add(f"redis://127.0.0.1:{r2.port}/0", c.SENDER_NAME), "msgpack"
    )
    target = redis_probe.Target(RedisNodeSpec(host="127.0.0.1", port=r1.port))
    await redis_probe.publish(
        [target], channel=contract.control_channel(), payload=message, timeout=2.0
    )
    await node.server.close()  # while the control action may still be running
    for _ in range(50):  # let a late action (if any) run to its end
        await asyncio.sleep(0)
    assert await wsfleet_clients(r2) == 0 and await wsfleet_clients(r1) == 0
