"""Compatibility mode with a real original-framework stand-in (notepack.io, ioredis): a signed
wsfleet fleet and an unsigned original node still talk both ways, in MessagePack and JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.fleet.test_original_interop import (  # noqa: F401  (fixtures)
    StartOriginal,
    cross_server_both_ways,
    frame,
    original_node_ready,
    start_original,
)
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("serialization", ["msgpack", "json"])
async def test_signed_fleet_and_original_node_in_compatibility_mode(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    connect: Connect,
    start_original: StartOriginal,  # noqa: F811
    tmp_path: Path,
    serialization: str,
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("k1:" + "s" * 40 + "\n")
    a, b = await make_fleet(
        [redis], 2, bus_key_file=keys, bus_accept_unsigned=True, serialization=serialization
    )
    a1, b1 = await join(connect, a, "a1"), await join(connect, b, "b1")
    orig = await start_original(redis, json_mode=serialization == "json")
    await orig.call("register", socketId="o1")
    await orig.call("broadcast", event="news", payload={"from": "original"})
    assert await a1.recv() == frame("news", {"from": "original"})
    assert await b1.recv() == frame("news", {"from": "original"})
    b.server.broadcast("news", "signed, from b")  # the original decodes the signed envelope
    await orig.received("o1", frame("news", "signed, from b"))
    assert await a1.recv() == frame("news", "signed, from b")
    assert await b1.recv() == frame("news", "signed, from b")
    await cross_server_both_ways(a, b, orig)
    assert not [m for m in orig.lines if "error" in m], orig.lines
    for node in (a, b):
        bus = node.server.fleet.bus  # type: ignore[union-attr]
        assert bus.auth.unsigned_accepted > 0
        assert sum(bus.stats.rejected.values()) == 0
