"""Two fleets on one real redis-server never see each other's traffic once each has its fleet
identity; without one (the original's channels) they cross, even on different ``db`` numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

from wsfleet.bus import FleetSettings


def news(payload: str) -> str:
    return json.dumps({"event": "news", "payload": payload}, separators=(",", ":"))


async def test_two_fleets_on_one_redis_never_see_each_others_traffic(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    blue_a, blue_b = await make_fleet([redis], 2, fleet="team-a.chat", names=["blue1", "blue2"])
    red_a, red_b = await make_fleet([redis], 2, fleet="team-b.chat", names=["red1", "red2"])
    blue, red = await join(connect, blue_b, "bob"), await join(connect, red_b, "rita")
    # the same socket id in both fleets: no duplicate-login kick across fleets
    alice_blue, alice_red = (
        await join(connect, blue_a, "alice"),
        await join(connect, red_a, "alice"),
    )
    blue_a.server.broadcast("news", "blue")
    assert await blue.recv() == await alice_blue.recv() == news("blue")
    blue_a.server.to_socket_id("rita", "news", "blue to rita")  # not in blue's fleet
    blue_a.server.broadcast("news", "blue again")  # through the same connection, after it
    assert await blue.recv() == await alice_blue.recv() == news("blue again")
    red_a.server.broadcast("news", "red")
    # Redis handled blue's publishes before red's (blue's client got them first): a red node
    # subscribed to blue's channels would have read them before red's own broadcast
    assert await red.recv() == await alice_red.recv() == news("red")
    assert blue_a.server.fleet is not None and red_a.server.fleet is not None
    assert set(blue_a.server.fleet.registry.live) == {"blue1", "blue2"}
    assert set(red_a.server.fleet.registry.live) == {"red1", "red2"}
    assert await redis.numsub("ws:team-a.chat:broadcast") == 2
    assert await redis.numsub("ws:broadcast") == 0


@dataclass
class OnDb:
    """A Redis process addressed with another ``db`` number."""

    redis: RedisProcess
    db: int

    @property
    def address(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/{self.db}"


async def test_without_a_fleet_identity_fleets_on_other_dbs_still_cross(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (one,) = await make_fleet([OnDb(redis, 0)], 1)
    (two,) = await make_fleet([OnDb(redis, 5)], 1)
    client = await join(connect, two, "someone")
    one.server.broadcast("news", "crossed")
    assert await client.recv() == news("crossed")


def test_a_fleet_identity_prefixes_every_channel_and_key() -> None:
    with pytest.raises(ValueError, match="fleet must be"):
        FleetSettings(fleet="a b")
    settings = FleetSettings(fleet="ns.chat")
    assert settings.broadcast_channel == "ws:ns.chat:broadcast"
    assert settings.room_channel("game") == "ws:ns.chat:game"
    assert settings.control_channel == "csbp:ns.chat:wsfleet:control"
    assert settings.key("nodes") == "csbp:ns.chat:wsfleet:nodes"
    assert FleetSettings().broadcast_channel == "ws:broadcast"  # the original's, by default
