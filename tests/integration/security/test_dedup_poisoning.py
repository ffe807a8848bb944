"""An attacker who read a node's boot id and sequence numbers on the bus publishes 1,000 tiny
messages with its next numbers: not one genuine message is dropped, with or without a key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.security.conftest import Attacker
from tests.redis_procs import RedisProcess

GENUINE = 200


@pytest.mark.parametrize("signed", [False, True], ids=["no-key", "signed"])
async def test_forged_sequence_numbers_never_suppress_genuine_messages(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    connect: Connect,
    attacker: Attacker,
    tmp_path: Path,
    signed: bool,
) -> None:
    options: dict[str, Any] = {"preset_room_namespaces": ("game",)}
    if signed:
        keys = tmp_path / "keys"
        keys.write_text("k1:" + "s" * 40 + "\n")
        options["bus_key_file"] = keys
    a, b = await make_fleet([redis], 2, **options)
    victim = await join(connect, b, "victim")
    b.server.join_room("game", "r1", "victim")
    spy = attacker.client.pubsub()
    await spy.subscribe("ws:game")
    a.server.broadcast_to_room("game", "r1", "move", 0)
    assert json.loads(await victim.recv())["payload"] == 0
    sniffed = None
    async with asyncio.timeout(5):
        while sniffed is None:
            message = await spy.get_message(timeout=1)
            if message is not None and message["type"] == "message":
                sniffed = msgpack.unpackb(message["data"])["wsf"]
    await spy.aclose()
    boot, seq = sniffed["b"], sniffed["s"]
    for i in range(1, 1001):
        await attacker.publish("ws:game", {"wsf": {"b": boot, "s": seq + i}})
    for i in range(1, GENUINE + 1):
        a.server.broadcast_to_room("game", "r1", "move", i)
    got = [json.loads(await victim.recv())["payload"] for _ in range(GENUINE)]
    assert got == list(range(1, GENUINE + 1))
    bus = b.server.fleet.bus  # type: ignore[union-attr]
    assert bus.stats.duplicates_dropped == 0
    if signed:
        await wait_until(lambda: bus.stats.rejected["unsigned"] == 1000)
