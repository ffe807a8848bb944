"""A ``SCRIPT FLUSH`` in the middle of a stream of recovered direct messages, on a real
redis-server: every append that met ``NOSCRIPT`` is sent again as ``EVAL`` by its connection, in
order, so the client gets every message once and in each sender's order, and the socket's history
holds each message once, in that order too. Two nodes write to the same stream (the receiver's
node and another), so one node's ``EVAL`` could reload a shared script between two calls of the
other: each node loads scripts of its own."""

from __future__ import annotations

import asyncio

import pytest
from tests.conftest import wait_until
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.redis_procs import RedisProcess

from wsfleet.bus.resp import script_resends
from wsfleet.client import Connector
from wsfleet.server import ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RECOVERY = ServerSettings(recovery=True, recovery_session_ttl=30.0, recovery_history_size=10_000)
CHUNKS = 40
PER_CHUNK = 50
FLUSH_AFTER = (5, 15, 25)


async def _marked(node: Node) -> None:
    recovery = node.server.recovery
    assert recovery is not None
    await wait_until(lambda: recovery.pending_marks == 0)


async def test_a_script_flush_mid_stream_loses_and_reorders_nothing(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    owner, other = await make_fleet([redis], 2, settings=RECOVERY)
    received: list[tuple[str, int]] = []
    client = Connector(owner.url("id=c1"), recover=True, connect_timeout=2.0, close_timeout=0.5)
    client.on_event("dm", lambda p: received.append((p["from"], p["n"])))
    try:
        await client.connect()
        await wait_until(lambda: owner.server.get_socket("c1") is not None)
        await _marked(owner)
        resends = script_resends.count
        flushes: list[asyncio.Task[bytes]] = []
        n = 0
        for chunk in range(CHUNKS):
            for _ in range(PER_CHUNK):
                # other: through Redis to the owner; owner: to its own socket at once, and to
                # the history through Redis
                other.server.to_socket_id("c1", "dm", {"from": "other", "n": n})
                owner.server.to_socket_id("c1", "dm", {"from": "owner", "n": n})
                n += 1
            if chunk in FLUSH_AFTER:  # while the calls above are in flight
                flushes.append(asyncio.create_task(redis.command("SCRIPT", "FLUSH")))
            await asyncio.sleep(0)
        assert [await flush for flush in flushes] == [b"+OK"] * len(FLUSH_AFTER)
        for node in (other, owner):
            assert node.server.fleet is not None
            assert await node.server.fleet.flush(10.0)
        total = CHUNKS * PER_CHUNK
        await wait_until(lambda: len(received) >= 2 * total, 10)
        assert len(received) == 2 * total
        for sender in ("other", "owner"):
            assert [m for s, m in received if s == sender] == list(range(total)), sender
        assert script_resends.count > resends  # the flushes did hit calls in flight

        recovery = owner.server.recovery
        assert recovery is not None
        state = await recovery.history.read(recovery.history.direct("c1"), 5.0)
        keys = [entry.key for entry in state.entries]
        assert len(keys) == len(set(keys)) == 2 * total  # every append once
        for node in (other, owner):
            boot = node.server.fleet.bus.boot  # type: ignore[union-attr]
            seqs = [int(k.split(".")[1]) for k in keys if k.split(".")[0] == boot]
            assert len(seqs) == total and seqs == sorted(seqs)  # in each sender's order
    finally:
        await asyncio.wait_for(client.aclose(), 5.0)
