"""The presence handlers' queue: bounded in bytes, drop-newest on overflow, then one
``overflow`` event per namespace so handlers resync."""

from __future__ import annotations

import asyncio

from wsfleet.server.presence_queue import EVENT_OVERHEAD, PresenceEvent, PresenceQueue
from wsfleet.tasks import TaskOwner


def join(i: int, namespace: str = "lobby") -> PresenceEvent:
    return PresenceEvent("join", namespace, "r", f"s{i:04d}", "n1", "joined")


async def test_a_flood_of_joins_stays_within_the_byte_bound_and_handlers_are_told() -> None:
    tasks = TaskOwner("test")
    weight = join(0).weight
    queue = PresenceQueue(weight * 10, tasks)
    gate = asyncio.Event()
    got: list[PresenceEvent] = []

    async def slow(event: PresenceEvent) -> None:
        await gate.wait()
        got.append(event)

    queue.handlers["lobby"] = [slow]
    accepted = [queue.put(join(i)) for i in range(10_000)]
    assert queue.queued_bytes <= weight * 10
    assert sum(accepted) == 10 and queue.dropped == 10_000 - 10
    gate.set()
    async with asyncio.timeout(5):
        while queue.handled < 11:
            await asyncio.sleep(0.001)
    assert [e.socket_id for e in got[:10]] == [f"s{i:04d}" for i in range(10)]
    assert got[10] == PresenceEvent("overflow", "lobby", "", "", "", "overflow")
    assert queue.queued_bytes == 0
    # room again: events flow as before
    assert queue.put(join(1))
    async with asyncio.timeout(5):
        while queue.handled < 12:
            await asyncio.sleep(0.001)
    await tasks.aclose()


async def test_events_of_namespaces_without_handlers_are_not_queued() -> None:
    tasks = TaskOwner("test")
    queue = PresenceQueue(EVENT_OVERHEAD * 100, tasks)
    assert queue.put(join(1, "other"))
    assert len(queue) == 0 and len(tasks) == 0


async def test_a_failing_handler_does_not_stop_the_others() -> None:
    tasks = TaskOwner("test")
    queue = PresenceQueue(1 << 20, tasks)
    got: list[str] = []

    def broken(event: PresenceEvent) -> None:
        raise RuntimeError("app bug")

    queue.handlers["lobby"] = [broken, lambda e: got.append(e.socket_id)]
    queue.put(join(1))
    queue.put(join(2))
    async with asyncio.timeout(5):
        while queue.handled < 2:
            await asyncio.sleep(0.001)
    assert got == ["s0001", "s0002"]
    await tasks.aclose()
