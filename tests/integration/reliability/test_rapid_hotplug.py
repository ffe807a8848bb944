"""Rapid hot-plug on real redis-servers: set, set, rollback within the drain grace ends in the last
list on every node, and a stream between the nodes loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.conftest import wait_until
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.integration.fleet.conftest import make_fleet as make_fleet
from tests.redis_procs import RedisProcess

from wsfleet import contract

pytestmark = pytest.mark.integration


def links(node: Node) -> set[str]:
    assert node.server.fleet is not None
    return set(node.server.fleet.bus.links)


async def send_set(node: Node, on: list[RedisProcess], wanted: list[RedisProcess]) -> None:
    """A ``redis.set`` as the operator sends it: on every Redis node it knows."""
    assert node.server.fleet is not None
    message = contract.redis_set([f"redis://{r.address}/0" for r in wanted], "test-operator")
    data = node.server.fleet.bus.codec.dumps(message)
    for r in on:
        client = aioredis.Redis(port=r.port)
        try:
            await client.publish(contract.control_channel(), data)
        finally:
            await client.aclose()


async def test_set_set_rollback_within_the_grace_ends_in_the_last_list_with_no_loss(
    redis_factory: Any, make_fleet: MakeFleet
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    k1, k2 = (f"127.0.0.1:{r.port}/0" for r in (r1, r2))
    sender, receiver = await make_fleet([r1, r2], 2, drain_grace=2.0, custom_channels=("stream",))
    got: list[int] = []
    assert receiver.server.fleet is not None and sender.server.fleet is not None
    receiver.server.set_custom_channel_handler(lambda channel, message: got.append(message["n"]))
    bus = sender.server.fleet.bus
    await asyncio.sleep(0.3)  # every node listens on both
    stop = asyncio.Event()

    async def stream() -> int:
        n = 0
        while not stop.is_set():
            bus.publish("stream", {"n": n, "wsf": bus.meta()}, "k")
            n += 1
            await asyncio.sleep(0.005)
        return n

    streaming = asyncio.create_task(stream())
    try:
        await send_set(sender, [r1, r2], [r2])
        await asyncio.sleep(0.3)
        await send_set(sender, [r1, r2], [r1])
        await asyncio.sleep(0.3)
        await send_set(sender, [r1, r2], [r1, r2])  # rollback, all within drain_grace
        await asyncio.sleep(2.5)  # beyond the grace: nothing is removed late
    finally:
        stop.set()
        sent = await streaming
    for node in (sender, receiver):
        assert links(node) == {k1, k2}
        assert node.server.fleet is not None and not node.server.fleet.bus.draining
    await wait_until(lambda: len(got) >= sent, timeout=10)
    assert got == list(range(sent))
