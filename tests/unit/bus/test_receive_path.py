"""The bus's receive path: what its shortcuts must not change (the S4 hot path, issue 19)."""

from __future__ import annotations

from dataclasses import dataclass

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import CHANNEL_CACHE_SIZE, Bus
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.settings import FleetSettings


@dataclass
class _Link:
    node: RedisNode
    key: str = "fake"


def _bus(name: str = "me") -> tuple[Bus, list[tuple[str, dict[str, object]]]]:
    seen: list[tuple[str, dict[str, object]]] = []
    bus = Bus(
        FleetSettings(server_name=name), lambda channel, message: seen.append((channel, message))
    )
    return bus, seen


def test_a_direct_message_on_the_inbox_is_delivered_once_and_our_own_is_dropped() -> None:
    bus, seen = _bus()
    other, _ = _bus("other")
    inbox = bus.inbox.encode()
    theirs = other.codec.dumps(env.private_one("frame", "s1", "other", other.meta()))
    mine = bus.codec.dumps(env.private_one("frame", "s1", "me", bus.meta()))
    for data in (theirs, mine, theirs):
        bus._receive(None, inbox, data)  # type: ignore[arg-type]
    assert seen == [(bus.inbox, bus.codec.loads(theirs))]
    assert bus.stats.self_echo_dropped == 1
    assert bus.stats.duplicates_dropped == 1
    assert bus.stats.received_by_kind["inbox"] == 3


def test_a_message_whose_sender_is_only_inside_data_is_dropped_as_our_own() -> None:
    bus, seen = _bus()
    other, _ = _bus("other")
    message = env.request("e", "me", 1, [], None, other.meta())  # senderServer inside data
    bus._receive(None, bus.settings.bridge_channel.encode(), bus.codec.dumps(message))  # type: ignore[arg-type]
    assert seen == []
    assert bus.stats.self_echo_dropped == 1


def test_channel_names_are_remembered_within_a_bound() -> None:
    bus, seen = _bus()
    other, _ = _bus("other")
    for i in range(5000):
        data = other.codec.dumps(env.broadcast("f", "other", other.meta()))
        bus._receive(None, f"custom-{i}".encode(), data)  # type: ignore[arg-type]
    assert len(seen) == 5000
    assert seen[-1][0] == "custom-4999"
    assert bus.stats.received_by_kind["custom"] == 5000
    assert len(bus._channel_names) <= CHANNEL_CACHE_SIZE
    assert len(bus._kinds) <= CHANNEL_CACHE_SIZE


def test_sharded_follows_the_links_and_the_configured_nodes() -> None:
    bus, _ = _bus()
    assert not bus.sharded
    cluster = RedisNode.parse("redis+cluster://127.0.0.1:7000")
    bus.links["fake"] = _Link(cluster)  # type: ignore[assignment]
    assert bus.sharded
    del bus.links["fake"]
    assert not bus.sharded
    bus.configured.append(cluster)
    assert bus.sharded
