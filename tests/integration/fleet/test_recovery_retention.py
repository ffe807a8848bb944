"""Retention of the history streams on a real redis-server: the epoch and the time to live are
refreshed once per interval per node, not by every append, yet no stream is ever left without a
time to live (a stream that an append creates gets it at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.fleet.conftest import MakeFleet
from tests.redis_procs import RedisProcess

from wsfleet.bus.resp import script_resends
from wsfleet.server import ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


async def _until(redis: RedisProcess, args: tuple[str, ...], check: object) -> bytes:
    assert callable(check)
    async with asyncio.timeout(5):
        while True:
            reply = await redis.command(*args)
            if check(reply):
                return reply
            await asyncio.sleep(0.01)


async def test_a_stream_always_has_a_time_to_live_and_an_epoch(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    (node,) = await make_fleet([redis], 1, settings=ServerSettings(recovery=True))
    recovery = node.server.recovery
    assert recovery is not None
    target = recovery.history.room("feed", "main")

    def positive(reply: bytes) -> bool:
        return reply.startswith(b":") and int(reply[1:]) > 0

    node.server.broadcast_to_room("feed", "main", "tick", 1)
    await _until(redis, ("PTTL", target.stream), positive)
    await _until(redis, ("PTTL", target.epoch_key), positive)
    # the stream is lost (evicted, deleted) within the node's upkeep interval: the append that
    # creates it again gives it its time to live and an epoch, so it can never stay forever
    await redis.command("DEL", target.stream, target.epoch_key)
    node.server.broadcast_to_room("feed", "main", "tick", 2)
    await _until(redis, ("XLEN", target.stream), lambda r: r == b":1")
    assert positive(await redis.command("PTTL", target.stream))
    assert positive(await redis.command("PTTL", target.epoch_key))


async def test_appends_survive_a_script_flush(redis: RedisProcess, make_fleet: MakeFleet) -> None:
    """Appends run as EVALSHA; after a SCRIPT FLUSH the failed call is sent again as EVAL:
    nothing is lost."""
    (node,) = await make_fleet([redis], 1, settings=ServerSettings(recovery=True))
    recovery = node.server.recovery
    assert recovery is not None
    target = recovery.history.room("feed", "main")
    node.server.broadcast_to_room("feed", "main", "tick", 1)
    await _until(redis, ("XLEN", target.stream), lambda r: r == b":1")
    assert await redis.command("SCRIPT", "FLUSH") == b"+OK"
    node.server.broadcast_to_room("feed", "main", "tick", 2)
    node.server.broadcast_to_room("feed", "main", "tick", 3)
    await _until(redis, ("XLEN", target.stream), lambda r: r == b":3")
    assert script_resends.count >= 1


async def test_a_redis_user_without_script_load_still_records(
    redis: RedisProcess, make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """An ACL that allows EVAL but not SCRIPT: the appends load their script with EVAL."""
    acl = ("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all", "-script")
    assert await redis.command(*acl) == b"+OK"
    password = tmp_path / "pw"
    password.write_text("app-secret\n")
    user = f"redis://app@127.0.0.1:{redis.port}/0?password_file={password}"
    (node,) = await make_fleet(
        [_Address(user)], 1, settings=ServerSettings(recovery=True), names=["acl"]
    )
    recovery = node.server.recovery
    assert recovery is not None
    target = recovery.history.room("feed", "main")
    node.server.broadcast_to_room("feed", "main", "tick", 1)
    await _until(redis, ("XLEN", target.stream), lambda r: r == b":1")


class _Address:
    def __init__(self, address: str) -> None:
        self.address = address
