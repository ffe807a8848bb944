"""The operator's own control messages, fed into a real node: its Redis links switch."""

from __future__ import annotations

import asyncio

from tests.integration.fleet.conftest import MakeFleet, Node
from tests.redis_procs import RedisProcess

from wsfleet import contract
from wsfleet_operator import constants as c
from wsfleet_operator import redis_probe
from wsfleet_operator.model import RedisNodeSpec


def target(r: RedisProcess) -> redis_probe.Target:
    return redis_probe.Target(RedisNodeSpec(host="127.0.0.1", port=r.port))


def url(r: RedisProcess) -> str:
    return f"redis://127.0.0.1:{r.port}/0"


def links(node: Node) -> set[str]:
    return set(node.server.fleet.bus.links)  # type: ignore[union-attr]


async def links_become(node: Node, want: set[str]) -> None:
    async with asyncio.timeout(15):
        while links(node) != want:
            await asyncio.sleep(0.02)


async def send(on: list[RedisProcess], payload: bytes) -> None:
    results = await redis_probe.publish(
        [target(r) for r in on], channel=redis_probe.control_channel("csbp:"), payload=payload
    )
    assert all(isinstance(n, int) for n in results.values()), results


async def test_the_operators_control_messages_switch_a_nodes_redis_links(
    redis_factory, make_fleet: MakeFleet
) -> None:
    r1, r2, r3 = await redis_factory(), await redis_factory(), await redis_factory()
    (node,) = await make_fleet([r1], 1)
    k1, k2, k3 = (f"127.0.0.1:{r.port}/0" for r in (r1, r2, r3))
    assert links(node) == {k1}

    # redis.set, exactly as the operator's handler builds it after a spec.redis edit
    await send([r1], redis_probe.control_message([url(r1), url(r2)], "msgpack"))
    await links_become(node, {k1, k2})

    # redis.add and redis.remove: the contract's builders, the operator's encoder and sender
    add = contract.redis_add(url(r3), c.SENDER_NAME)
    await send([r1, r2], redis_probe.encode_control(add, "msgpack"))
    await links_become(node, {k1, k2, k3})

    remove = contract.redis_remove(url(r1), c.SENDER_NAME)
    await send([r1, r2, r3], redis_probe.encode_control(remove, "msgpack"))
    await links_become(node, {k2, k3})
    # what the registry reports to the operator's status loop lives on the new nodes
    report = await redis_probe.probe([target(r2), target(r3)], bridge_prefix="csbp:")
    assert report.live_nodes == 1


def test_the_operator_reads_the_names_from_the_contract() -> None:
    assert redis_probe.control_channel("app:") == contract.control_channel("app:")
    assert contract.control_channel() == "csbp:wsfleet:control"
    assert contract.nodes_key() == "csbp:wsfleet:nodes"
    assert contract.inbox_channel("n1") == "csbp:wsfleet:node:n1"
    assert [a.value for a in contract.ControlAction][:3] == [
        "redis.set",
        "redis.add",
        "redis.remove",
    ]


async def test_a_fleet_with_a_bus_key_obeys_only_the_operators_signed_control_messages(
    redis_factory, make_fleet: MakeFleet, tmp_path
) -> None:
    keys = "op1:" + "k" * 40
    (tmp_path / "keys").write_text(keys)
    r1, r2 = await redis_factory(), await redis_factory()
    (node,) = await make_fleet([r1], 1, bus_key_file=tmp_path / "keys")
    channel = redis_probe.control_channel("csbp:")
    unsigned = redis_probe.control_message([url(r1), url(r2)], "msgpack")
    await send([r1], unsigned)
    bus = node.server.fleet.bus  # type: ignore[union-attr]
    async with asyncio.timeout(10):
        while bus.stats.rejected["unsigned"] != 1:
            await asyncio.sleep(0.02)
    assert links(node) == {f"127.0.0.1:{r1.port}/0"}
    await send([r1], redis_probe.sign_control(unsigned, channel, keys, "msgpack"))
    await links_become(node, {f"127.0.0.1:{r1.port}/0", f"127.0.0.1:{r2.port}/0"})
