"""A Redis outage with 1 MB messages: the buffer holds its byte bound, and the paced flush after
recovery delivers everything in order without Redis cutting off the other node's reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.redis_procs import RedisProcess

from wsfleet.bus.bus import Bus, BusUnavailableError
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.settings import FleetSettings

pytestmark = pytest.mark.integration

MB = 1024 * 1024


class Collector:
    def __init__(self) -> None:
        self.numbers: list[int] = []

    def on_bus_message(self, channel: str, message: dict[str, Any]) -> None:
        self.numbers.append(message["n"])

    def on_bus_health(self, healthy: bool, info: dict[str, Any]) -> None:
        pass


@pytest.fixture
async def buses(redis: RedisProcess) -> AsyncIterator[tuple[Bus, Bus, Collector]]:
    common: dict[str, Any] = {
        "redis": (RedisNode.parse(redis.address),),
        "command_timeout": 0.5,
        "redis_ping_interval": 30.0,  # the pause below must not look like a dead subscriber
        "redis_ping_timeout": 10.0,
        "probe_interval": 60.0,
    }
    a = Bus(
        FleetSettings(
            server_name="a",
            outage_buffer_max_bytes=20 * MB,
            outage_flush_bytes=2 * MB,
            outage_flush_rate=16 * MB,
            **common,
        ),
        Collector(),
    )
    got = Collector()
    b = Bus(FleetSettings(server_name="b", **common), got)
    b.subscribe("ws:chat")
    for bus in (a, b):
        await bus.start()
        await bus.wait_ready(10)
    await b.wait_subscribed("ws:chat")
    yield a, b, got
    for bus in (a, b):
        await bus.aclose()


async def test_one_mb_messages_in_an_outage_stay_under_the_byte_bound_and_all_arrive(
    redis: RedisProcess, buses: tuple[Bus, Bus, Collector]
) -> None:
    a, b, got = buses
    # Redis cuts a subscriber whose output buffer passes 4 MB: an unpaced 20 MB flush would.
    await redis.command("CONFIG", "SET", "client-output-buffer-limit", "pubsub 4mb 4mb 0")
    (reader,) = b.links.values()
    reconnects = reader.health.reconnects
    redis.pause()
    try:
        a.publish("ws:chat", {"n": 0, "wsf": a.meta()}, "r")
        await wait_until(lambda: not a.usable_links(), timeout=5)
        pad = "x" * 1_000_000
        futures = [
            a.publish("ws:chat", {"n": i, "p": pad, "wsf": a.meta()}, "r", want_result=True)
            for i in range(1, 26)
        ]
        await asyncio.sleep(0)
        peak = a.outage.bytes
        assert peak <= 20 * MB
        refused = [f for f in futures if f is not None and f.done()]
        assert len(refused) == 5
        for f in refused:
            with pytest.raises(BusUnavailableError, match="buffer is full"):
                f.result()
    finally:
        redis.resume()
    await wait_until(lambda: len(got.numbers) >= 21, timeout=20)
    assert got.numbers == list(range(21))  # in order, none lost
    assert reader.health.reconnects == reconnects  # the other node's reader was not cut off
    assert a.outage.bytes == 0
