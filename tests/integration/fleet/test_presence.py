"""Cluster-wide presence on real redis-servers: joins and leaves of a node process are seen on
another node (handlers and room members), only for the namespaces that opted in, and the
memberships of a node killed with SIGKILL are left by a survivor within one lease period."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
from tests.conftest import Connect, RawClient, wait_until
from tests.integration.fleet.conftest import MakeFleet
from tests.procs import NodeProcess, start_node
from tests.redis_procs import RedisProcess

from wsfleet.server import PresenceEvent, ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LEASE_TTL = 2.0
PRESENCE = ServerSettings(presence_namespaces=("lobby",), presence_clients=True)


async def presence_node(redis: RedisProcess, name: str) -> NodeProcess:
    return await start_node(
        [
            "--redis",
            redis.address,
            "--server-name",
            name,
            "--app",
            "tests.fixtures.presence_app:setup",
            "--presence-namespaces",
            "lobby",
            "--presence-clients",
            "true",
            "--lease-ttl",
            str(LEASE_TTL),
            "--lease-refresh",
            "0.4",
        ]
    )


async def member(connect: Connect, url: str) -> RawClient:
    """Connect and wait until the connection handler (the joins) ran: the heartbeat echo comes
    after the socket's own presence frames."""
    client = await connect(url)
    await client.send("")
    while (text := await client.recv()) != "":
        assert json.loads(text)["event"] == "wsf:presence"
    return client


async def frames(client: RawClient, count: int) -> list[dict[str, Any]]:
    return [json.loads(await client.recv()) for _ in range(count)]


def seen(events: list[PresenceEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.room_id, e.socket_id, e.reason) for e in events]


async def test_joins_and_leaves_on_one_node_reach_the_other(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (b,) = await make_fleet([redis], 1, names=["b"], settings=PRESENCE)
    events: list[PresenceEvent] = []
    b.server.on_presence("lobby", events.append)
    with pytest.raises(ValueError, match="presence_namespaces"):
        b.server.on_presence("quiet", events.append)
    a = await presence_node(redis, "proc-a")
    try:
        watcher = await connect(b.url("id=w1"))
        await watcher.send("")
        assert await watcher.recv() == ""
        b.server.join_room("quiet", "r1", "w1")  # not opted in: no frame, no event
        b.server.join_room("lobby", "r1", "w1")
        assert json.loads(await watcher.recv())["payload"]["socketId"] == "w1"  # its own join
        await wait_until(lambda: len(events) == 1, 5)

        alice = await member(connect, a.url(query="id=alice&room=r1"))
        await wait_until(lambda: len(events) == 2, 5)
        assert events[1] == PresenceEvent("join", "lobby", "r1", "alice", "proc-a", "joined")
        # the room member on the other node gets a normal event frame (the original client's)
        (frame,) = await frames(watcher, 1)
        assert frame == {
            "event": "wsf:presence",
            "payload": {
                "type": "join",
                "namespace": "lobby",
                "room": "r1",
                "socketId": "alice",
                "node": "proc-a",
                "reason": "joined",
            },
        }
        await alice.ws.close()
        await wait_until(lambda: len(events) == 3, 5)
        assert seen(events[2:]) == [("leave", "r1", "alice", "left")]
        (frame,) = await frames(watcher, 1)
        assert frame["payload"]["type"] == "leave"
        assert all(e.namespace == "lobby" for e in events)
    finally:
        await a.stop()


async def test_a_killed_node_s_members_leave_within_one_lease(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (b,) = await make_fleet([redis], 1, names=["b"], settings=PRESENCE)
    events: list[PresenceEvent] = []
    b.server.on_presence("lobby", events.append)
    a = await presence_node(redis, "proc-a")
    try:
        for i in range(3):
            await member(connect, a.url(query=f"id=m{i}&room=r{i % 2}"))
        await wait_until(lambda: len(events) == 3, 5)
        killed = time.monotonic()
        a.proc.send_signal(signal.SIGKILL)
        await a.wait(timeout=10)
        await wait_until(lambda: len(events) == 6, LEASE_TTL + 3)
        took = time.monotonic() - killed
        leaves = sorted(seen(events[3:]))
        assert leaves == [
            ("leave", "r0", "m0", "node-lost"),
            ("leave", "r0", "m2", "node-lost"),
            ("leave", "r1", "m1", "node-lost"),
        ]
        assert {e.node for e in events[3:]} == {"proc-a"}
        assert took < LEASE_TTL + 2.5, took
        await asyncio.sleep(0.5)  # sent once, by one survivor
        assert len(events) == 6
    finally:
        await a.stop(signal.SIGKILL)


async def test_two_survivors_send_the_lost_leaves_once(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    b, c = await make_fleet([redis], 2, names=["b", "c"], settings=PRESENCE)
    on_b: list[PresenceEvent] = []
    on_c: list[PresenceEvent] = []
    b.server.on_presence("lobby", on_b.append)
    c.server.on_presence("lobby", on_c.append)
    a = await presence_node(redis, "proc-a")
    try:
        await member(connect, a.url(query="id=solo&room=r"))
        await wait_until(lambda: len(on_b) == 1 and len(on_c) == 1, 5)
        a.proc.send_signal(signal.SIGKILL)
        await a.wait(timeout=10)
        await wait_until(lambda: len(on_b) == 2 and len(on_c) == 2, LEASE_TTL + 3)
        await asyncio.sleep(1.0)
        assert (
            seen(on_b)
            == seen(on_c)
            == [
                ("join", "r", "solo", "joined"),
                ("leave", "r", "solo", "node-lost"),
            ]
        )
    finally:
        await a.stop(signal.SIGKILL)


async def test_no_events_without_presence(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (b,) = await make_fleet([redis], 1, names=["b"], settings=ServerSettings())
    a = await presence_node(redis, "proc-a")
    try:
        assert b.server.presence is None
        watcher = await member(connect, b.url("id=w"))
        b.server.join_room("lobby", "r", "w")
        await member(connect, a.url(query="id=x&room=r"))
        b.server.broadcast_to_room("lobby", "r", "marker", 1)
        # the marker is the first frame: no presence frame reached the node without presence
        assert json.loads(await watcher.recv())["event"] == "marker"
    finally:
        await a.stop()


async def test_a_flood_of_joins_keeps_the_handlers_queue_bounded(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    """2,000 joins on one node against a slow handler on another: the queue never holds more
    than its byte bound, the excess is dropped and counted, and the handler is told (overflow)."""
    small = ServerSettings(presence_namespaces=("lobby",), presence_queue_max_bytes=20_000)
    a, b = await make_fleet([redis], 2, names=["a", "b"], settings=small)
    presence = b.server.presence
    assert presence is not None
    gate = asyncio.Event()
    got: list[PresenceEvent] = []
    peak = 0

    async def slow(event: PresenceEvent) -> None:
        nonlocal peak
        peak = max(peak, presence.queue.queued_bytes)
        await gate.wait()
        got.append(event)

    b.server.on_presence("lobby", slow)
    await member(connect, a.url("id=flooder"))
    for i in range(2000):
        a.server.join_room("lobby", f"room{i}", "flooder")
    await wait_until(lambda: presence.received == 2000, 15)
    assert presence.queue.queued_bytes <= 20_000 and peak <= 20_000
    assert presence.queue.dropped > 1000
    gate.set()
    await wait_until(lambda: bool(got) and got[-1].kind == "overflow", 15)
    kept = [e for e in got if e.kind == "join"]
    assert len(kept) + presence.queue.dropped == 2000
    order = [int(e.room_id[4:]) for e in kept]
    assert order == sorted(order) and order[0] == 0  # what was kept, in arrival order
