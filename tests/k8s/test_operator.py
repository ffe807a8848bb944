"""The operator against a real kube-apiserver + etcd (tests/k8s/conftest.py) and real
redis-servers: kopf's own runner (``kopf run --standalone -m wsfleet_operator``) in a thread.

No controllers run, so Deployments get no pods and no status unless a test writes it, and
nothing is garbage collected (ownerReferences are asserted instead)."""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
import yaml
from tests.k8s.controlplane import ControlPlane
from tests.k8s.harness import (
    RBAC_FILE,
    SELECTOR,
    WAIT,
    Operator,
    RedisFactory,
    assert_no_permission_errors,
    condition,
    create_fleet,
    eventually,
    fleet_events,
    fleet_path,
    fleet_when,
    get,
    kubectl,
    merge_patch,
    ok,
    redis_node,
)
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.k8s


# ---------------------------------------------------------------------------------------------
# tests


async def test_create_makes_every_owned_object_with_owner_references(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    began = time.monotonic()
    created = create_fleet(kube_api, ns, {"redis": {"nodes": [redis_node(redis)]}})
    dep = await eventually(
        lambda: get(kube_api, f"/apis/apps/v1/namespaces/{ns}/deployments/chat"),
        "the Deployment exists",
    )
    latency = time.monotonic() - began
    print(f"\nreconcile latency (create WsFleet -> Deployment exists): {latency * 1000:.0f} ms")
    uid = created["metadata"]["uid"]
    paths = {
        "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/chat",
        "Service": f"/api/v1/namespaces/{ns}/services/chat",
        "headless Service": f"/api/v1/namespaces/{ns}/services/chat-headless",
        "ConfigMap": f"/api/v1/namespaces/{ns}/configmaps/chat-redis-nodes",
        "PodDisruptionBudget": f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/chat",
    }
    objs = {
        what: await eventually(lambda p=path: get(kube_api, p), f"{what} exists")
        for what, path in paths.items()
    }
    for what, obj in objs.items():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "wsfleet.io/v1alpha1",
            "kind": "WsFleet",
            "name": "chat",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }, what
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "wsfleet-operator"
        managers = {m["manager"] for m in obj["metadata"]["managedFields"]}
        assert "wsfleet-operator" in managers, what
    assert objs["ConfigMap"]["data"] == {"redis": f"redis://127.0.0.1:{redis.port}/0\n"}
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 2  # the CRD default
    assert pod["terminationGracePeriodSeconds"] == 45
    assert {
        "name": "redis-nodes",
        "configMap": {"name": "chat-redis-nodes", "defaultMode": 420},
    } in pod["volumes"]
    assert objs["headless Service"]["spec"]["clusterIP"] == "None"

    def ports(svc: dict[str, Any]) -> dict[str, tuple[int, str, str]]:
        return {
            p["name"]: (p["port"], p["targetPort"], p["appProtocol"]) for p in svc["spec"]["ports"]
        }

    # the internal port only on the headless Service (issue 11): never on the clients' Service
    assert ports(objs["Service"]) == {"ws": (80, "ws", "kubernetes.io/ws")}
    assert ports(objs["headless Service"]) == {
        "ws": (80, "ws", "kubernetes.io/ws"),
        "metrics": (9100, "metrics", "http"),
    }
    assert objs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert objs["PodDisruptionBudget"]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": 0}

    # kopf keeps its state in annotations under wsfleet.io; no finalizer; status strictly ours
    fleet = await fleet_when(kube_api, ns, lambda f: f.get("status"), "status written")
    assert "finalizers" not in fleet["metadata"]
    assert "wsfleet.io/last-handled-configuration" in fleet["metadata"]["annotations"]
    assert not any(k.startswith("kopf.zalando.org") for k in fleet["metadata"]["annotations"])
    assert set(fleet["status"]) <= {
        "replicas",
        "readyReplicas",
        "selector",
        "observedGeneration",
        "liveNodes",
        "redis",
        "conditions",
    }
    assert fleet["status"]["selector"] == SELECTOR.format("chat")
    health = await eventually(operator.healthz, "the liveness endpoint answers")
    assert "status_loop" in health


async def test_scale_subresource_and_kubectl_scale_reach_the_deployment(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    create_fleet(kube_api, ns, {"replicas": 2, "redis": {"nodes": [redis_node(redis)]}})
    dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat"
    await eventually(lambda: get(kube_api, dep_path), "the Deployment exists")
    scale_path = fleet_path(ns, "chat", "/scale")
    merge_patch(kube_api, scale_path, {"spec": {"replicas": 5}})
    await eventually(
        lambda: ((get(kube_api, dep_path) or {}).get("spec") or {}).get("replicas") == 5,
        "Deployment scaled to 5 through /scale",
    )
    scale = await eventually(
        lambda: (s := get(kube_api, scale_path)) and s["status"].get("selector") and s,
        "the scale subresource reports the selector (for an HPA)",
    )
    assert scale["spec"]["replicas"] == 5
    assert scale["status"]["selector"] == SELECTOR.format("chat")
    kubectl(kube_api, "-n", ns, "scale", "wsfleet/chat", "--replicas=3")
    await eventually(
        lambda: ((get(kube_api, dep_path) or {}).get("spec") or {}).get("replicas") == 3,
        "Deployment scaled to 3 by kubectl scale",
    )


async def test_redis_edit_updates_configmap_publishes_and_leaves_pods_alone(
    kube_api: ControlPlane, operator: Operator, redis_factory: RedisFactory
) -> None:
    ns = operator.ns
    old, new = await redis_factory(), await redis_factory()
    create_fleet(kube_api, ns, {"redis": {"nodes": [redis_node(old)]}})
    dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat"
    cm_path = f"/api/v1/namespaces/{ns}/configmaps/chat-redis-nodes"
    before = await eventually(lambda: get(kube_api, dep_path), "the Deployment exists")
    await eventually(lambda: get(kube_api, cm_path), "the ConfigMap exists")
    clients = [aioredis.Redis(host="127.0.0.1", port=r.port) for r in (old, new)]
    subs = [c.pubsub() for c in clients]
    try:
        for sub in subs:
            await sub.subscribe(f"csbp:{ns}.chat:wsfleet:control")
        began = time.monotonic()
        merge_patch(
            kube_api,
            fleet_path(ns, "chat"),
            {"spec": {"redis": {"nodes": [redis_node(new, db=1)]}}},
        )
        got = []
        for sub in subs:
            async with asyncio.timeout(WAIT):
                while (msg := await sub.get_message(True, timeout=1.0)) is None:
                    pass
            got.append(msgpack.unpackb(msg["data"], raw=False))
        print(
            f"\nhot-plug latency (patch spec.redis -> redis.set received): "
            f"{(time.monotonic() - began) * 1000:.0f} ms"
        )
    finally:
        for sub in subs:
            await sub.aclose()
        for client in clients:
            await client.aclose()
    address = f"redis://127.0.0.1:{new.port}/1"
    assert (
        got
        == [
            {
                "action": "redis.set",
                "args": {"addresses": [address]},
                "senderServer": "wsfleet-operator",
            }
        ]
        * 2
    )
    await eventually(
        lambda: (get(kube_api, cm_path) or {}).get("data") == {"redis": address + "\n"},
        "the ConfigMap lists the new node",
    )
    after = get(kube_api, dep_path)
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    updated = await eventually(
        lambda: [e for e in fleet_events(kube_api, ns) if e["reason"] == "RedisNodesUpdated"],
        "a RedisNodesUpdated Event",
    )
    assert updated[0]["message"] == (
        f"Redis nodes now 127.0.0.1:{new.port}/1; redis.set published on 2 Redis nodes"
    )


async def test_status_follows_the_deployment_and_the_redis_registry(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    create_fleet(kube_api, ns, {"replicas": 3, "redis": {"nodes": [redis_node(redis)]}})
    fleet = await fleet_when(kube_api, ns, lambda f: condition(f, "Ready"), "a first status")
    assert condition(fleet, "Ready")["status"] == "False"
    assert condition(fleet, "RedisHealthy")["status"] == "True"
    generation = fleet["metadata"]["generation"]
    assert fleet["status"]["observedGeneration"] == generation

    # a node of the fleet registers in Redis (lease a minute ahead), pods become ready
    now_ms = int(time.time() * 1000)
    for pod in ("chat-a", "chat-b", "chat-c"):
        assert (
            await redis.command("ZADD", f"csbp:{ns}.chat:wsfleet:nodes", str(now_ms + 60_000), pod)
            == b":1"
        )
    assert await redis.command("ZADD", f"csbp:{ns}.chat:wsfleet:nodes", "1", "chat-dead") == b":1"
    dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat"
    dep = get(kube_api, dep_path)
    assert dep is not None
    merge_patch(
        kube_api,
        dep_path + "/status",
        {
            "status": {
                "observedGeneration": dep["metadata"]["generation"],
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
            }
        },
    )
    fleet = await fleet_when(
        kube_api,
        ns,
        lambda f: (
            condition(f, "Ready").get("status") == "True" and f["status"].get("liveNodes") == 3
        ),
        "Ready with 3 live nodes",
    )
    status = fleet["status"]
    assert (status["replicas"], status["readyReplicas"]) == (3, 3)
    assert status["observedGeneration"] == generation
    assert status["redis"] == [{"address": f"127.0.0.1:{redis.port}/0", "healthy": True}]
    assert condition(fleet, "Progressing")["reason"] == "Complete"
    assert condition(fleet, "Degraded")["status"] == "False"
    assert all(c["observedGeneration"] == generation for c in status["conditions"])
    table = kubectl(kube_api, "-n", ns, "get", "wsf", "chat", "--no-headers")
    assert table.split()[:5] == ["chat", "3", "3", "3", "True"]

    # Redis goes away: RedisHealthy and Degraded say so
    await redis.kill()
    fleet = await fleet_when(
        kube_api,
        ns,
        lambda f: condition(f, "RedisHealthy").get("status") == "False",
        "RedisHealthy False",
    )
    assert condition(fleet, "Degraded")["reason"] == "RedisUnreachable"


async def test_a_spec_the_api_refuses_is_stalled_with_the_generation_observed(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    """kstatus (Flux, Argo CD) reports Failed, not "in progress" forever; an Event says why."""
    ns = operator.ns
    bad = {"tolerations": [{"key": "k", "operator": "Sometimes"}]}  # valid for the CRD only
    spec = {"redis": {"nodes": [redis_node(redis)]}, "podTemplate": bad}
    create_fleet(kube_api, ns, spec)
    fleet = await fleet_when(
        kube_api,
        ns,
        lambda f: condition(f, "Degraded").get("reason") == "SpecRejected",
        "Degraded SpecRejected",
    )
    message = condition(fleet, "Degraded")["message"]
    assert "HTTP 422" in message and "tolerations[0].operator" in message, message
    assert fleet["status"]["observedGeneration"] == fleet["metadata"]["generation"]
    assert condition(fleet, "Stalled")["status"] == "True"
    assert condition(fleet, "Reconciling")["status"] == "False"
    assert condition(fleet, "Ready")["status"] == "False"
    warning = await eventually(
        lambda: [e for e in fleet_events(kube_api, ns) if e["reason"] == "SpecRejected"],
        "a SpecRejected Event on the WsFleet",
    )
    assert warning[0]["type"] == "Warning"
    assert warning[0]["involvedObject"]["uid"] == fleet["metadata"]["uid"]

    # fixing the spec heals it, with the new generation observed
    merge_patch(kube_api, fleet_path(ns, "chat"), {"spec": {"podTemplate": None}})
    healed = await fleet_when(
        kube_api,
        ns,
        lambda f: (
            condition(f, "Degraded").get("status") == "False"
            and f["status"]["observedGeneration"] == f["metadata"]["generation"]
        ),
        "healed after the fix",
    )
    assert healed["metadata"]["generation"] == fleet["metadata"]["generation"] + 1
    assert condition(healed, "Stalled")["status"] == "False"
    assert get(kube_api, f"/apis/apps/v1/namespaces/{ns}/deployments/chat") is not None
    await eventually(
        lambda: any(e["reason"] == "Recovered" for e in fleet_events(kube_api, ns)),
        "a Recovered Event",
    )


async def test_delete_is_immediate_and_an_edit_while_down_is_applied_on_restart(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    create_fleet(kube_api, ns, {"replicas": 2, "redis": {"nodes": [redis_node(redis)]}})
    dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat"
    await eventually(lambda: get(kube_api, dep_path), "the Deployment exists")

    operator.stop()
    merge_patch(kube_api, fleet_path(ns, "chat"), {"spec": {"replicas": 4}})
    operator.start()
    await eventually(
        lambda: ((get(kube_api, dep_path) or {}).get("spec") or {}).get("replicas") == 4,
        "the edit made while the operator was down is applied",
    )

    ok(kube_api.request("DELETE", fleet_path(ns, "chat")), 200)
    await eventually(lambda: get(kube_api, fleet_path(ns, "chat")) is None, "the WsFleet is gone")
    output = operator.stop()
    assert operator.stop_seconds < 10
    assert "Traceback" not in output
    # no garbage collector here: the children stay, owned by the deleted WsFleet's uid
    dep = get(kube_api, dep_path)
    assert dep is not None and dep["metadata"]["ownerReferences"][0]["kind"] == "WsFleet"


async def test_operator_runs_under_exactly_the_rbac_rules_it_ships(
    kube_api: ControlPlane,
    k8s_namespace: str,
    crd: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    redis: RedisProcess,
) -> None:
    ns = k8s_namespace
    docs = list(yaml.safe_load_all(RBAC_FILE.read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    role_name = f"wsfleet-operator-{ns}"
    ok(
        kube_api.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {**copy.deepcopy(role), "metadata": {"name": role_name}},
        ),
        201,
    )
    ok(
        kube_api.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role_name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role_name,
                },
                "subjects": [
                    {
                        "kind": "User",
                        "name": "wsfleet-operator",
                        "apiGroup": "rbac.authorization.k8s.io",
                    }
                ],
            },
        ),
        201,
    )
    # a password-protected Redis node: the operator must read the Secret to PING it
    assert await redis.command("CONFIG", "SET", "requirepass", "pw-123") == b"+OK"
    ok(
        kube_api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis-auth"},
                "data": {"password": base64.b64encode(b"pw-123").decode()},
            },
        ),
        201,
    )
    op = Operator(ns, kube_api.kubeconfig_for("wsfleet-operator"), monkeypatch)
    op.start()
    try:
        node = redis_node(redis, passwordSecretRef={"name": "redis-auth", "key": "password"})
        create_fleet(kube_api, ns, {"redis": {"nodes": [node]}})
        dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat"
        await eventually(lambda: get(kube_api, dep_path), "the Deployment exists")
        await eventually(
            lambda: (
                condition(get(kube_api, fleet_path(ns, "chat")), "RedisHealthy").get("status")
                == "True"
            ),
            "status written, with the password read from the Secret",
        )
        merge_patch(kube_api, fleet_path(ns, "chat", "/scale"), {"spec": {"replicas": 3}})
        await eventually(
            lambda: ((get(kube_api, dep_path) or {}).get("spec") or {}).get("replicas") == 3,
            "scaled",
        )
        dep = get(kube_api, dep_path)
        assert dep is not None
        merge_patch(kube_api, dep_path + "/status", {"status": {"replicas": 3, "readyReplicas": 3}})
        await eventually(
            lambda: (
                ((get(kube_api, fleet_path(ns, "chat")) or {}).get("status") or {}).get(
                    "readyReplicas"
                )
                == 3
            ),
            "the Deployment's status, seen through the watch",
        )
        ok(kube_api.request("DELETE", fleet_path(ns, "chat")), 200)
        await eventually(lambda: get(kube_api, fleet_path(ns, "chat")) is None, "deleted")
    finally:
        output = op.stop()
    assert_no_permission_errors(output)


async def test_the_api_server_defaults_and_validates_wsfleets(
    kube_api: ControlPlane, k8s_namespace: str, crd: dict[str, Any]
) -> None:
    ns = k8s_namespace
    stored = create_fleet(kube_api, ns, {"redis": {"nodes": [{"host": "r"}]}}, name="defaults")
    assert stored["spec"]["replicas"] == 2
    assert stored["spec"]["drain"] == {"timeoutSeconds": 30, "preStopSeconds": 5}
    assert stored["spec"]["redis"]["nodes"] == [{"host": "r", "port": 6379, "db": 0, "tls": False}]
    bad_specs = {
        "duplicate node": {"redis": {"nodes": [{"host": "a"}, {"host": "a", "port": 6379}]}},
        "setting name": {"redis": {"nodes": [{"host": "a"}]}, "server": {"settings": {"Max": "1"}}},
        "bounds": {
            "redis": {"nodes": [{"host": "a"}]},
            "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
        },
        "no nodes": {"redis": {"nodes": []}},
        "negative replicas": {"replicas": -1, "redis": {"nodes": [{"host": "a"}]}},
        "sentinel without master": {"redis": {"nodes": [{"host": "s", "mode": "sentinel"}]}},
        "master without sentinel": {"redis": {"nodes": [{"host": "c", "masterName": "m"}]}},
        "cluster beside a node": {
            "redis": {"nodes": [{"host": "c", "mode": "cluster"}, {"host": "a"}]}
        },
        "bad seed": {"redis": {"nodes": [{"host": "c", "mode": "cluster", "seeds": ["x"]}]}},
    }
    topology = {"host": "c", "mode": "cluster", "seeds": ["c2:7001"]}
    stored = create_fleet(kube_api, ns, {"redis": {"nodes": [topology]}}, name="cluster")
    assert stored["spec"]["redis"]["nodes"][0]["seeds"] == ["c2:7001"]
    sentinel = {"host": "s", "port": 26379, "mode": "sentinel", "masterName": "main"}
    create_fleet(kube_api, ns, {"redis": {"nodes": [sentinel]}}, name="sentinel")
    for i, (why, spec) in enumerate(bad_specs.items()):
        body = {
            "apiVersion": "wsfleet.io/v1alpha1",
            "kind": "WsFleet",
            "metadata": {"name": f"bad-{i}"},
            "spec": spec,
        }
        resp = kube_api.request("POST", fleet_path(ns), body)
        assert resp.status == 422, f"{why}: {resp.status} {resp.body[:300]!r}"
