"""The operator's own control messages, fed into a real node: its Redis links switch."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import kopf
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.redis_procs import RedisProcess

from wsfleet import contract
from wsfleet_operator import constants as c
from wsfleet_operator import handlers, redis_probe
from wsfleet_operator.model import RedisNodeSpec
from wsfleet_operator.runtime import MEMO_KEY, Runtime
from wsfleet_operator.settings import OperatorSettings


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


class SecretsOnly:
    """The API as the operator's hot-plug handler meets it: Secrets it may read or not, the
    ConfigMap apply, Events."""

    def __init__(self, secrets: dict[str, dict[str, str]], forbidden: bool = False) -> None:
        self.secrets = secrets
        self.forbidden = forbidden
        self.events: list[dict[str, Any]] = []

    async def get(self, api_version: str, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        from wsfleet_operator.kube import KubeError

        assert kind == "Secret"
        if self.forbidden:
            raise KubeError(403, "GET", f"/api/v1/namespaces/{ns}/secrets/{name}", "forbidden")
        data = self.secrets.get(name)
        return None if data is None else {"data": data}

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.events.append(obj)
        return obj


async def hot_plug(kube: SecretsOnly, old: list[RedisProcess], new: list[RedisProcess]) -> Runtime:
    """The operator's spec.redis handler for a WsFleet ns/chat with a bus-key Secret."""
    runtime = Runtime(
        OperatorSettings(redis_timeout=1.0, metrics_port=0),
        kube,  # type: ignore[arg-type]
    )

    def nodes(rs: list[RedisProcess]) -> list[dict[str, Any]]:
        return [{"host": "127.0.0.1", "port": r.port} for r in rs]

    spec = {"redis": {"nodes": nodes(new)}, "busKeySecretRef": {"name": "chat-bus-key"}}
    body = {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "metadata": {"name": "chat", "namespace": "ns", "uid": "u-1", "generation": 2},
        "spec": spec,
    }
    await handlers.redis_changed(
        old={"nodes": nodes(old)},
        new=spec["redis"],
        body=kopf.Body(body),
        memo=kopf.Memo({MEMO_KEY: runtime}),
        logger=logging.getLogger("test"),
    )
    return runtime


async def test_the_operators_hot_plug_is_signed_with_the_fleets_bus_key_secret(
    redis_factory, make_fleet: MakeFleet, tmp_path
) -> None:
    """A node with a bus key (the Secret's text as its key file) follows the operator's
    redis.set once the operator reads the same Secret, and refuses it when the operator may not
    read the Secret (and so cannot sign): the fleet says why instead."""
    keys = "k2:" + "n" * 43 + "\nk1:" + "o" * 43 + "\n"
    (tmp_path / "keys").write_text(keys)
    r1, r2, r3 = await redis_factory(), await redis_factory(), await redis_factory()
    (node,) = await make_fleet([r1], 1, bus_key_file=tmp_path / "keys", fleet="ns.chat")
    bus = node.server.fleet.bus  # type: ignore[union-attr]
    secret = {"chat-bus-key": {"keys": base64.b64encode(keys.encode()).decode()}}

    # the operator without Secret access: nothing unsigned reaches the bus, the reason is kept
    blind = SecretsOnly(secret, forbidden=True)
    runtime = await hot_plug(blind, [r1], [r1, r2])
    st = runtime.state(("ns", "chat"))
    assert st.bus_key_error is not None and "HTTP 403 Forbidden" in st.bus_key_error
    assert [e["reason"] for e in blind.events] == ["RedisHotPlugUnsigned"]
    assert "cannot sign it" in blind.events[0]["message"]
    assert runtime.metrics.control_messages.labels("failed")._value.get() == 2

    # an unsigned redis.set (what an operator unaware of the key would send) is refused
    unsigned = redis_probe.control_message([url(r1), url(r3)], "msgpack")
    await redis_probe.publish(
        [target(r1)], channel=redis_probe.control_channel("csbp:ns.chat:"), payload=unsigned
    )
    async with asyncio.timeout(10):
        while bus.stats.rejected["unsigned"] != 1:
            await asyncio.sleep(0.02)
    assert links(node) == {f"127.0.0.1:{r1.port}/0"}

    # the operator that reads the Secret signs: the node follows
    kube = SecretsOnly(secret)
    runtime = await hot_plug(kube, [r1], [r1, r2])
    assert runtime.state(("ns", "chat")).bus_key_error is None
    assert [e["reason"] for e in kube.events] == ["RedisNodesUpdated"]
    await links_become(node, {f"127.0.0.1:{r1.port}/0", f"127.0.0.1:{r2.port}/0"})
    assert bus.stats.rejected["unsigned"] == 1
