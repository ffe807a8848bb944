"""Room-namespace subscriptions: reference-counted, race-free (W10), presets kept (W7)."""

from __future__ import annotations

import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.integration


async def subscribed(redis: RedisProcess, channel: str) -> int:
    return await redis.numsub(channel)


async def test_w10_leave_then_join_at_once_keeps_the_namespace_subscribed(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1)
    await join(connect, a, "u")
    bus = a.server.fleet.bus  # type: ignore[union-attr]
    a.server.join_room("game", "r1", "u")
    await bus.wait_subscribed("ws:game")
    a.server.leave_room("game", "r1", "u")  # last member: unsubscribe requested
    a.server.join_room("game", "r2", "u")  # ...and a new room at once
    await bus.wait_subscribed("ws:game")
    for _ in range(3):  # let any late UNSUBSCRIBE land
        await bus.probe_all()
    assert await subscribed(redis, "ws:game") == 1


async def test_w8_last_member_disconnecting_unsubscribes(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1)
    client = await join(connect, a, "u")
    a.server.join_room("chat", "r", "u")
    await a.server.fleet.bus.wait_subscribed("ws:chat")  # type: ignore[union-attr]
    assert await subscribed(redis, "ws:chat") == 1
    await client.close()

    async def gone() -> bool:
        return await subscribed(redis, "ws:chat") == 0

    await wait_until(lambda: a.server.get_socket("u") is None)
    for _ in range(50):
        if await gone():
            break
        await a.server.fleet.bus.probe_all()  # type: ignore[union-attr]
    assert await gone()


async def test_w7_preset_namespaces_stay_subscribed(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1, preset_room_namespaces=("lobby",))
    await a.server.fleet.bus.wait_subscribed("ws:lobby")  # type: ignore[union-attr]
    await join(connect, a, "u")
    a.server.join_room("lobby", "main", "u")
    a.server.leave_room("lobby", "main", "u")
    await a.server.fleet.bus.probe_all()  # type: ignore[union-attr]
    assert await subscribed(redis, "ws:lobby") == 1


async def test_w13_reserved_namespaces_are_refused(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1)
    await join(connect, a, "u")
    for namespace in ("broadcast", "private_socket"):
        with pytest.raises(ValueError, match="reserved"):
            a.server.join_room(namespace, "r", "u")
