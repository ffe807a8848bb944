"""A control message from whoever reaches Redis cannot make a node read a file, connect to an
attacker's listener or learn a password."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack
import redis.asyncio as aioredis
from tests.conftest import wait_until
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.integration.security.conftest import Attacker, Listener
from tests.redis_procs import RedisProcess

from wsfleet import contract


def rejected(node: Node, reason: str) -> int:
    return node.server.fleet.bus.stats.rejected[reason]  # type: ignore[union-attr]


def links(node: Node) -> set[str]:
    return set(node.server.fleet.bus.links)  # type: ignore[union-attr]


async def test_a_password_file_address_never_reads_the_file_nor_reaches_the_attacker(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    attacker: Attacker,
    listener: Listener,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "service-account-token"
    secret.write_text("CANARY-do-not-send\n")
    (node,) = await make_fleet([redis], 1)
    before = links(node)
    trap = f"redis://127.0.0.1:{listener.port}/0"
    attacks = [
        contract.redis_add(f"{trap}?password_file={secret}", "evil"),
        contract.redis_add(f"{trap}?password_file=/etc/hostname", "evil"),
        contract.redis_set([f"redis://:guess@127.0.0.1:{listener.port}/0"], "evil"),
        contract.redis_set([f"redis://admin:pw@127.0.0.1:{listener.port}/0"], "evil"),
        contract.redis_add("memory://shared", "evil"),
    ]
    for message in attacks:
        await attacker.publish(contract.control_channel(), message)
    await wait_until(lambda: rejected(node, "address") == len(attacks), 10)
    assert listener.connections == 0 and bytes(listener.received) == b""
    assert links(node) == before


async def test_add_everywhere_never_publishes_a_password(
    redis_factory, make_fleet: MakeFleet, tmp_path: Path
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    await r2.command("CONFIG", "SET", "requirepass", "hunter2-secret")
    password_file = tmp_path / "redis-password"
    password_file.write_text("hunter2-secret\n")
    a, b = await make_fleet([r1], 2, redis_password_file=password_file)
    spy = aioredis.Redis(host="127.0.0.1", port=r1.port)
    pubsub = spy.pubsub()
    await pubsub.subscribe(contract.control_channel())
    try:
        await a.server.add_redis_instance(
            f"redis://:hunter2-secret@127.0.0.1:{r2.port}/0", everywhere=True
        )
        async with asyncio.timeout(10):
            while (message := await pubsub.get_message(timeout=1)) is None or message[
                "type"
            ] != "message":
                pass
        data: bytes = message["data"]
        assert b"hunter2" not in data
        assert msgpack.unpackb(data)["args"]["address"] == f"redis://127.0.0.1:{r2.port}/0"
        # b took the password from its own configuration and works on r2
        key = f"127.0.0.1:{r2.port}/0"
        link = None
        async with asyncio.timeout(10):
            while (link := b.server.fleet.bus.links.get(key)) is None or not (  # type: ignore[union-attr]
                link.publisher_healthy and link.subscriber_healthy
            ):
                await asyncio.sleep(0.02)
        assert link.node.password == "hunter2-secret"
    finally:
        await pubsub.aclose()
        await spy.aclose()
