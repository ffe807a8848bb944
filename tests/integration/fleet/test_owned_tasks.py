"""Closing a node stops everything it started: control actions, cross-server listeners, custom
channel handlers, async system and event handlers. Nothing is left running, no task is
destroyed while pending, and no Redis connection outlives the node (real redis-servers)."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

from wsfleet.server import Acknowledge, Socket

pytestmark = pytest.mark.integration


async def client_count(redis: RedisProcess) -> int:
    """Connections on the Redis node (CLIENT LIST), not counting the one asking."""
    reader, writer = await asyncio.open_connection("127.0.0.1", redis.port)
    writer.write(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
    await writer.drain()
    header = await reader.readline()
    assert header.startswith(b"$"), header
    body = await reader.readexactly(int(header[1:]) + 2)
    writer.close()
    await writer.wait_closed()
    return len([line for line in body.splitlines() if line.startswith(b"id=")]) - 1


async def test_closing_a_node_stops_its_work_in_flight(
    redis_factory: Any,
    make_fleet: MakeFleet,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    r1: RedisProcess = await redis_factory()
    r2: RedisProcess = await redis_factory()
    assert await client_count(r1) == 0 and await client_count(r2) == 0
    a, b = await make_fleet([r1], 2, hot_add_grace=30.0)
    forever = asyncio.Event()  # never set: every handler below waits until it is cancelled
    started: dict[str, asyncio.Task[Any]] = {}

    def hold(kind: str) -> Any:
        async def wait() -> None:
            task = asyncio.current_task()
            assert task is not None
            started[kind] = task
            await forever.wait()

        return wait()

    @b.server.on_cross_server_event("slow")
    def slow(data: dict[str, Any], reply: Any) -> Any:
        return hold("cross-server listener")

    def custom(channel: str, message: dict[str, Any]) -> Any:
        return hold("custom channel handler")

    b.server.set_custom_channel_handler(custom)
    b.server.manual_subscribe("app:custom")

    @b.server.on_system("message")
    def on_message(socket: Socket, raw: str) -> Any:
        return hold("system handler")

    @b.server.on("work")
    def work(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        return hold("event handler")

    client = await join(connect, b, "c")
    await client.send('{"event":"work","payload":1}')
    b_fleet = b.server.fleet
    assert b_fleet is not None
    await b_fleet.bus.wait_subscribed("app:custom")
    a.server.emit_cross_server("slow", {"n": 1}, target_server=b.name)
    a.server.publish_redis_message("app:custom", {"n": 1})
    # a redis.add that waits (hot_add_grace) for the whole fleet to list the new Redis node
    a_fleet = a.server.fleet
    assert a_fleet is not None
    a_fleet.control.announce("redis.add", f"redis://{r2.address}/0")
    async with asyncio.timeout(10):
        while len(started) < 4 or b.server.get_redis_instances_count() < 2:
            await asyncio.sleep(0.01)
    assert await client_count(r2) >= 1  # b connected to the added node
    names = ("wsfleet-redis-add", "wsfleet-redis-target")  # the node list applies it
    control = [t for t in asyncio.all_tasks() if t.get_name().startswith(names)]
    assert control, "the redis.add is in flight"

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        async with asyncio.timeout(10):
            await b.server.close()
        await a.server.close()
        for task in [*started.values(), *control]:
            assert task.done(), task
        assert all(task.cancelled() for task in started.values())
        await client.ws.close()  # the test's own client, the one task not the nodes'
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not left, left
        gc.collect()
        await asyncio.sleep(0)
    assert "Task was destroyed but it is pending" not in caplog.text
    assert await client_count(r1) == 0
    assert await client_count(r2) == 0


async def test_a_closing_node_starts_no_new_work(
    make_fleet: MakeFleet, redis: RedisProcess
) -> None:
    (a,) = await make_fleet([redis], 1)
    fleet = a.server.fleet
    assert fleet is not None
    await a.server.close()
    ran = []

    async def late() -> None:
        ran.append(1)

    assert fleet.tasks.spawn(late(), "late") is None  # refused, and the coroutine is closed
    assert a.server.dispatcher.tasks.spawn(late(), "late") is None
    await asyncio.sleep(0)
    assert ran == []
