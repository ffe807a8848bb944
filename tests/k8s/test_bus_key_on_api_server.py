"""The fleet's bus key through a real API server with RBAC: the operator running as a service
account that may not read the bus-key Secret reports the fleet Degraded (BusKeyUnreadable, with
the Secret and the missing right in the message); once a Role grants get on exactly that Secret,
the operator reads it, the fleet recovers, and its hot-plug redis.set is signed with the key."""

from __future__ import annotations

import asyncio
import base64
import copy
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
import yaml
from tests.k8s.controlplane import ControlPlane
from tests.k8s.harness import (
    RBAC_FILE,
    WAIT,
    Operator,
    RedisFactory,
    condition,
    create_fleet,
    eventually,
    fleet_events,
    fleet_path,
    fleet_when,
    get,
    merge_patch,
    ok,
    redis_node,
)

from wsfleet import contract
from wsfleet.sealing import KeyRing, Signer

pytestmark = pytest.mark.k8s

RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind}"
KEYS = "k2:" + "s" * 43 + "\nk1:" + "r" * 43 + "\n"


def grant(api: ControlPlane, ns: str, name: str, rules: list[dict[str, Any]], sa: str) -> None:
    """A Role with ``rules`` bound to the ServiceAccount ``sa`` in ``ns``."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": rules,
    }
    ok(api.request("POST", RBAC.format(ns=ns, kind="roles"), role), 201)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
    }
    ok(api.request("POST", RBAC.format(ns=ns, kind="rolebindings"), binding), 201)


def rules_without_secrets() -> list[dict[str, Any]]:
    """operator/rbac.yaml's rules, as the chart grants them without operator.rbac.readSecrets."""
    (role,) = [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d["kind"] == "ClusterRole"]
    return [copy.deepcopy(r) for r in role["rules"] if "secrets" not in r["resources"]]


async def test_the_operator_reads_the_bus_key_it_may_read_and_says_so_when_it_may_not(
    kube_api: ControlPlane,
    k8s_namespace: str,
    crd: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    redis_factory: RedisFactory,
) -> None:
    ns = k8s_namespace
    r1, r2 = await redis_factory(), await redis_factory()
    grant(kube_api, ns, "operator", rules_without_secrets(), "op")
    token = kube_api.service_account_token(ns, "op")
    ok(
        kube_api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "chat-bus-key"},
                "data": {"keys": base64.b64encode(KEYS.encode()).decode()},
            },
        ),
        201,
    )
    kubeconfig = kube_api.kubeconfig_for(f"system:serviceaccount:{ns}:op", token=token)
    op = Operator(ns, kubeconfig, monkeypatch)
    op.start()
    try:
        create_fleet(
            kube_api,
            ns,
            {"redis": {"nodes": [redis_node(r1)]}, "busKeySecretRef": {"name": "chat-bus-key"}},
        )
        # the pods get the Secret as a directory and bus_key_file pointing into it
        dep = await eventually(
            lambda: get(kube_api, f"/apis/apps/v1/namespaces/{ns}/deployments/chat"),
            "the Deployment exists",
        )
        pod = dep["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "bus-key"]
        assert volume["secret"]["secretName"] == "chat-bus-key"
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["WSFLEET_BUS_KEY_FILE"] == "/etc/wsfleet/bus-key/keys"

        # no right to read it: Degraded, with the reason a human can act on
        fleet = await fleet_when(
            kube_api,
            ns,
            lambda f: condition(f, "Degraded").get("reason") == "BusKeyUnreadable",
            "Degraded: BusKeyUnreadable",
        )
        message = condition(fleet, "Degraded")["message"]
        assert f"may not read Secret {ns}/chat-bus-key (HTTP 403 Forbidden)" in message
        assert "operator.rbac.readBusKey" in message
        assert condition(fleet, "Degraded")["status"] == "True"
        await eventually(  # the event is posted after the status it explains
            lambda: any(
                e["reason"] == "BusKeyUnreadable" and e["type"] == "Warning"
                for e in fleet_events(kube_api, ns)
            ),
            "a BusKeyUnreadable warning event",
        )

        # get on exactly this Secret (what the chart grants): read, recovered
        secret_rule = {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": ["chat-bus-key"],
        }
        grant(kube_api, ns, "operator-bus-key", [secret_rule], "op")
        await fleet_when(
            kube_api,
            ns,
            lambda f: condition(f, "Degraded").get("reason") not in (None, "BusKeyUnreadable"),
            "no longer BusKeyUnreadable",
        )

        # the hot-plug redis.set it publishes is signed with the Secret's signing key
        channel = contract.control_channel(contract.fleet_prefix("csbp:", f"{ns}.chat"))
        client = aioredis.Redis(host="127.0.0.1", port=r1.port)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            nodes = [redis_node(r1), redis_node(r2)]
            merge_patch(kube_api, fleet_path(ns, "chat"), {"spec": {"redis": {"nodes": nodes}}})
            async with asyncio.timeout(WAIT):
                got = None
                while got is None:
                    got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            data = bytes(got["data"])
        finally:
            await pubsub.aclose()
            await client.aclose()
        signer = Signer(KeyRing.parse(KEYS))
        assert signer.check(channel.encode(), data) is None
        decoded = msgpack.unpackb(data, raw=False)
        assert decoded["action"] == "redis.set"
        assert decoded["wsfa"].startswith("k2.c")  # the first key of the Secret signs
        assert Signer(KeyRing.parse("other:" + "x" * 43)).check(channel.encode(), data) == (
            "unknown-key"
        )
    finally:
        op.stop()
