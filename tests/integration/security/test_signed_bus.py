"""A signed bus on real nodes and a real redis-server: forged traffic is dropped and counted,
original nodes' messages pass only in the explicit compatibility mode, keys rotate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, Node, join
from tests.integration.security.conftest import Attacker
from tests.redis_procs import RedisProcess

from wsfleet import contract
from wsfleet.bus.codec import Serialization
from wsfleet.ops.internal_http import cluster_view
from wsfleet.sealing import KeyRing, Signer

OLD = "k2026a:" + "a" * 43
NEW = "k2026b:" + "b" * 43
ANOTHER = "k2026a:" + "z" * 43  # the right key id with another secret


def stats(node: Node) -> Any:
    return node.server.fleet.bus.stats  # type: ignore[union-attr]


def key_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def forgeries(victim: str) -> list[tuple[str, dict[str, Any]]]:
    frame_ack = '{"callbackId":"c42","payload":{"ok":true,"balance":1000000}}'
    return [
        ("ws:broadcast", {"data": '{"event":"news","payload":"forged"}', "senderServer": "x"}),
        ("ws:broadcast", {"data": "not json at all", "senderServer": "x"}),
        ("ws:private_socket", {"data": frame_ack, "socketId": victim, "senderServer": "x"}),
        (
            "ws:game",
            {
                "data": '{"event":"move","payload":"forged"}',
                "roomNamespace": "game",
                "roomId": "r1",
                "senderServer": "x",
                "excludeSocketIds": [],
            },
        ),
        (
            "csbp:server_bridge",
            {
                "data": {
                    "event": "pay",
                    "senderServer": "x",
                    "payload": {"to": "mallory"},
                    "targetServer": [],
                    "callbackId": "cb1",
                },
                "wsf": {"r": "attacker:replies"},
            },
        ),
        (contract.control_channel(), contract.redis_remove("redis://127.0.0.1:1/0", "x")),
    ]


async def test_forged_envelopes_are_dropped_and_counted_on_a_signed_bus(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    connect: Connect,
    attacker: Attacker,
    tmp_path: Path,
) -> None:
    keys = key_file(tmp_path, "keys", OLD)
    a, b = await make_fleet([redis], 2, bus_key_file=keys, preset_room_namespaces=("game",))
    victim = await join(connect, b, "victim")
    b.server.join_room("game", "r1", "victim")
    ran: list[Any] = []
    b.server.on_cross_server_event("pay", lambda data, reply: ran.append(data))
    spy = attacker.client.pubsub()
    await spy.subscribe("attacker:replies")
    sent = forgeries("victim")
    for channel, message in sent:
        await attacker.publish(channel, message)
    # also a message signed with a guessed secret under the real key id
    forged_sig = Signer(KeyRing.parse(ANOTHER), Serialization.MSGPACK).seal(
        msgpack.packb(sent[0][1]), "ws:broadcast"
    )
    await attacker.publish("ws:broadcast", forged_sig)
    await wait_until(lambda: sum(stats(b).rejected.values()) >= len(sent) + 1, 10)
    assert stats(b).rejected == {"unsigned": len(sent), "bad-signature": 1}
    # genuine traffic still flows: the first frame the victim gets is the genuine one
    a.server.broadcast("news", "genuine")
    assert await victim.recv() == '{"event":"news","payload":"genuine"}'
    a.server.emit_cross_server("pay", {"to": "bob"})
    await wait_until(lambda: len(ran) == 1)
    assert ran[0]["payload"] == {"to": "bob"}
    assert await spy.get_message(timeout=0.05) is not None  # the subscribe confirmation
    assert await spy.get_message(timeout=0.05) is None  # no reply went to the attacker
    await spy.aclose()
    view = cluster_view(b.server)
    assert view["busAuth"]["mode"] == "signed" and view["busAuth"]["keyIds"] == ["k2026a"]
    assert "a" * 20 not in str(view)  # no secret on /cluster
    assert all("boot" not in info for info in view["liveNodes"].values())


async def test_compatibility_mode_accepts_only_original_shaped_unsigned_messages(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    connect: Connect,
    attacker: Attacker,
    tmp_path: Path,
) -> None:
    keys = key_file(tmp_path, "keys", OLD)
    (node,) = await make_fleet([redis], 1, bus_key_file=keys, bus_accept_unsigned=True)
    victim = await join(connect, node, "victim")
    auth = node.server.fleet.bus.auth  # type: ignore[union-attr]
    # as an original Node.js node publishes a broadcast: accepted, and counted as such
    original = {"data": '{"event":"news","payload":"from node.js"}', "senderServer": "js-1"}
    await attacker.publish("ws:broadcast", original)
    assert await victim.recv() == '{"event":"news","payload":"from node.js"}'
    assert auth.unsigned_accepted == 1
    # never an unsigned control message, nor one that claims wsfleet metadata
    await attacker.publish(
        contract.control_channel(), contract.redis_remove("redis://127.0.0.1:1/0", "x")
    )
    await attacker.publish("ws:broadcast", {**original, "wsf": {"b": "x", "s": 1}})
    await attacker.publish(
        contract.inbox_channel(node.name), {"data": {"event": "e", "senderServer": "x"}}
    )
    await wait_until(lambda: stats(node).rejected["unsigned"] == 3)
    view = cluster_view(node.server)
    assert view["busAuth"]["mode"] == "compat" and view["busAuth"]["unsignedAccepted"] == 1


async def test_key_rotation_old_key_verifies_during_rotation_retired_key_refused(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    connect: Connect,
    attacker: Attacker,
    tmp_path: Path,
) -> None:
    a_keys = key_file(tmp_path, "a", f"{OLD}\n{NEW}")  # a: signs old, verifies new
    b_keys = key_file(tmp_path, "b", f"{NEW}\n{OLD}")  # b: already signs new
    (a,) = await make_fleet([redis], 1, bus_key_file=a_keys, config_poll_interval=0.05)
    (b,) = await make_fleet([redis], 1, bus_key_file=b_keys, config_poll_interval=0.05)
    on_a, on_b = await join(connect, a, "on-a"), await join(connect, b, "on-b")
    b.server.broadcast("hello", "new key")
    assert await on_a.recv() == await on_b.recv() == '{"event":"hello","payload":"new key"}'
    a.server.broadcast("hello", "old key")
    assert await on_b.recv() == await on_a.recv() == '{"event":"hello","payload":"old key"}'
    # rotation done: a retires the old key (the file is re-read without a restart)
    a_keys.write_text(NEW + "\n")
    auth = a.server.fleet.bus.auth  # type: ignore[union-attr]
    await wait_until(lambda: auth.key_ids == ["k2026b"], 10)
    old_signed = Signer(KeyRing.parse(OLD), Serialization.MSGPACK).seal(
        msgpack.packb({"data": '{"event":"hello","payload":"old key"}', "senderServer": "b"}),
        "ws:broadcast",
    )
    await attacker.publish("ws:broadcast", old_signed)
    await wait_until(lambda: stats(a).rejected["unknown-key"] == 1)
    b.server.broadcast("hello", "after rotation")
    assert await on_a.recv() == '{"event":"hello","payload":"after rotation"}'
    assert stats(a).rejected["unknown-key"] == 1


async def test_a_replayed_genuine_message_is_refused(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    connect: Connect,
    attacker: Attacker,
    tmp_path: Path,
) -> None:
    keys = key_file(tmp_path, "keys", OLD)
    a, b = await make_fleet([redis], 2, bus_key_file=keys)
    victim = await join(connect, b, "victim")
    spy = attacker.client.pubsub()
    await spy.subscribe("ws:broadcast")
    assert (await spy.get_message(timeout=5))["type"] == "subscribe"
    a.server.broadcast("pay", "once")
    assert await victim.recv() == '{"event":"pay","payload":"once"}'
    captured = None
    async with asyncio.timeout(5):
        while captured is None:
            message = await spy.get_message(timeout=1)
            if message is not None and message["type"] == "message":
                captured = message["data"]
    await spy.aclose()
    for _ in range(3):
        await attacker.publish("ws:broadcast", captured)
    await wait_until(lambda: stats(b).duplicates_dropped == 3)
    a.server.broadcast("pay", "twice?")
    assert await victim.recv() == '{"event":"pay","payload":"twice?"}'


async def test_every_path_works_signed_directory_routed_messages_and_duplicate_logins(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, tmp_path: Path
) -> None:
    keys = key_file(tmp_path, "keys", OLD)
    a, b = await make_fleet([redis], 2, bus_key_file=keys)
    on_b = [await join(connect, b, sid) for sid in ("b1", "b2")]
    async with asyncio.timeout(5):  # b's claims reached the directory
        while [await a.server.locate_socket(s) for s in ("b1", "b2")] != ["node2"] * 2:
            await asyncio.sleep(0.01)
    a.server.to_socket_id("b1", "dm", 1)  # sealed unbound: a Redis script picks the channel
    assert await on_b[0].recv() == '{"event":"dm","payload":1}'
    a.server.to_socket_ids(["b1", "b2"], "multi", 2)
    assert [await c.recv() for c in on_b] == ['{"event":"multi","payload":2}'] * 2
    # a duplicate login: the notice is routed by a Redis script to the old node's inbox
    await join(connect, a, "b1")
    assert await on_b[0].closed() == 4012
    assert sum(stats(b).rejected.values()) == sum(stats(a).rejected.values()) == 0
