"""What a platform team needs from the operator, against the real API server (issue 16): the
RBAC under OwnerReferencesPermissionEnforcement, workload fields, CEL refusals, the rollout
strategy, the PDB in an outage, Ready only after a complete rollout, Events, and drift repair.

No controllers run here: the tests write Deployment, Pod and PDB status themselves where the
controllers would."""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

import pytest
import yaml
from tests.k8s.controlplane import ControlPlane
from tests.k8s.harness import (
    RBAC_FILE,
    Operator,
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
from tests.redis_procs import RedisProcess

from wsfleet_operator import resources
from wsfleet_operator.model import FleetSpec

pytestmark = pytest.mark.k8s

MERGE = "application/merge-patch+json"


def dep_path(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/chat"


def bind_cluster_role(api: ControlPlane, ns: str, name: str, rules: list[dict[str, Any]]) -> str:
    """A ServiceAccount of its own bound to a ClusterRole with ``rules``; returns its token."""
    role = f"{name}-{ns}"
    ok(
        api.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": rules,
            },
        ),
        201,
    )
    ok(
        api.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        ),
        201,
    )
    return api.service_account_token(ns, name)


def apply_as(api: ControlPlane, token: str, obj: dict[str, Any]) -> Any:
    meta = obj["metadata"]
    prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    plural = {
        "ConfigMap": "configmaps",
        "Service": "services",
        "Deployment": "deployments",
        "PodDisruptionBudget": "poddisruptionbudgets",
    }[obj["kind"]]
    path = f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    return api.request(
        "PATCH",
        path + "?fieldManager=wsfleet-operator&force=true",
        yaml.safe_dump(obj).encode(),
        token=token,
        content_type="application/apply-patch+yaml",
    )


async def test_owner_references_need_update_on_wsfleets_finalizers(
    kube_api: ControlPlane, k8s_namespace: str, crd: dict[str, Any], redis: RedisProcess
) -> None:
    """With OwnerReferencesPermissionEnforcement (tests/k8s/conftest.py turns it on), every
    object the operator applies is refused without `update` on wsfleets/finalizers."""
    ns = k8s_namespace
    docs = list(yaml.safe_load_all(RBAC_FILE.read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    shipped = copy.deepcopy(role["rules"])
    finalizers = [r for r in shipped if r["resources"] == ["wsfleets/finalizers"]]
    assert finalizers == [
        {"apiGroups": ["wsfleet.io"], "resources": ["wsfleets/finalizers"], "verbs": ["update"]}
    ]
    without = [r for r in shipped if r not in finalizers]
    full_token = bind_cluster_role(kube_api, ns, "shipped", shipped)
    lacking_token = bind_cluster_role(kube_api, ns, "lacking", without)

    created = create_fleet(kube_api, ns, {"redis": {"nodes": [redis_node(redis)]}})
    owner = {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "metadata": {"name": "chat", "namespace": ns, "uid": created["metadata"]["uid"]},
    }
    fleet = FleetSpec.parse("chat", ns, created["spec"])
    objects = resources.owned_objects(fleet, owner=owner)
    assert all(o["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] for o in objects)

    # RBAC is read from an informer cache: wait until both accounts have their rights
    for token in (full_token, lacking_token):
        await eventually(
            lambda t=token: kube_api.request("GET", fleet_path(ns), token=t).status == 200,
            "the ClusterRole is in effect",
        )
    for obj in objects:
        refused = apply_as(kube_api, lacking_token, obj)
        assert refused.status == 403, (obj["kind"], refused.status, refused.body[:300])
        assert b"cannot set blockOwnerDeletion" in refused.body, refused.body[:300]
    for obj in objects:
        applied = apply_as(kube_api, full_token, obj)
        assert applied.status in (200, 201), (obj["kind"], applied.status, applied.body[:300])


async def test_workload_fields_reach_the_deployment(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    env = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4317"},
        {"name": "APP_TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}},
    ]
    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "chat"}},
    }
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["rt"]}]}
                ]
            }
        }
    }
    spec = {
        "redis": {"nodes": [redis_node(redis)]},
        "env": env,
        "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "APP_"}],
        "volumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": True}],
        "podTemplate": {
            "labels": {"team": "realtime"},
            "annotations": {"example.com/owner": "rt"},
            "volumes": [{"name": "certs", "secret": {"secretName": "chat-certs"}}],
            "imagePullSecrets": [{"name": "registry"}],
            "serviceAccountName": "chat",
            "priorityClassName": "realtime",
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "rt"}],
            "topologySpreadConstraints": [spread],
            "affinity": affinity,
        },
    }
    create_fleet(kube_api, ns, spec)
    dep = await eventually(lambda: get(kube_api, dep_path(ns)), "the Deployment exists")
    tmpl = dep["spec"]["template"]
    pod = tmpl["spec"]
    (container,) = pod["containers"]
    assert container["env"][-2:] == env  # after the operator's own variables
    assert container["envFrom"] == [{"configMapRef": {"name": "app-config"}, "prefix": "APP_"}]
    assert {"name": "certs", "mountPath": "/certs", "readOnly": True} in container["volumeMounts"]
    assert {
        "name": "certs",
        "secret": {"secretName": "chat-certs", "defaultMode": 420},
    } in pod["volumes"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert (pod["serviceAccountName"], pod["priorityClassName"]) == ("chat", "realtime")
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "rt"}]
    assert pod["topologySpreadConstraints"] == [spread]
    assert pod["affinity"] == affinity
    assert tmpl["metadata"]["labels"]["team"] == "realtime"
    assert tmpl["metadata"]["annotations"] == {"example.com/owner": "rt"}


def test_the_crd_refuses_what_would_break_the_fleet_with_a_clear_message(
    kube_api: ControlPlane, k8s_namespace: str, crd: dict[str, Any]
) -> None:
    base = {"redis": {"nodes": [{"host": "r"}]}}
    refused = {
        "server_name": (
            {"server": {"settings": {"server_name": "a"}}},
            "server_name cannot be set: every pod is named after itself (POD_NAME)",
        ),
        "redis": (
            {"server": {"settings": {"redis": "redis://x"}}},
            "redis cannot be set: list the Redis nodes in spec.redis.nodes",
        ),
        "port": (
            {"server": {"settings": {"port": "1"}}},
            "port cannot be set: the operator fixes the client port (8080)",
        ),
        "internal_port": (
            {"server": {"settings": {"internal_port": "1"}}},
            "internal_port cannot be set: the operator fixes the internal port (9100)",
        ),
        "config_dir": (
            {"server": {"settings": {"config_dir": "/x"}}},
            "config_dir cannot be set: the operator mounts the Redis node list",
        ),
        "env POD_NAME": (
            {"env": [{"name": "POD_NAME", "value": "x"}]},
            "POD_NAME, POD_NAMESPACE and POD_IP are set by the operator",
        ),
        "env WSFLEET_REDIS": (
            {"env": [{"name": "WSFLEET_REDIS", "value": "x"}]},
            "are fixed by the operator",
        ),
        "volume tmp": (
            {"podTemplate": {"volumes": [{"name": "tmp", "emptyDir": {}}]}},
            "redis-nodes, tmp, bus-key and redis-secret-* are used by the operator",
        ),
        "mount /etc/wsfleet": (
            {"volumeMounts": [{"name": "v", "mountPath": "/etc/wsfleet/redis-nodes"}]},
            "/tmp and /etc/wsfleet/ are mounted by the operator",
        ),
        "rollout 0/0": (
            {"rollout": {"maxSurge": 0, "maxUnavailable": "0%"}},
            "maxSurge and maxUnavailable cannot both be 0",
        ),
        "eviction policy": (
            {"disruption": {"unhealthyPodEvictionPolicy": "Never"}},
            'supported values: "AlwaysAllow", "IfHealthyBudget"',
        ),
    }
    for i, (why, (extra, message)) in enumerate(refused.items()):
        body = {
            "apiVersion": "wsfleet.io/v1alpha1",
            "kind": "WsFleet",
            "metadata": {"name": f"bad-{i}"},
            "spec": {**base, **extra},
        }
        resp = kube_api.request("POST", fleet_path(k8s_namespace), body)
        assert resp.status == 422, f"{why}: {resp.status} {resp.body[:300]!r}"
        text = " ".join(resp.json()["message"].split())  # the CRD folds long messages
        assert message in text, f"{why}: {text}"
    # allowed: other settings, an env var that carries a setting from a Secret
    fine = {
        **base,
        "server": {"settings": {"max_message_size": "1048576"}},
        "env": [
            {"name": "WSFLEET_BUS_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "k"}}}
        ],
        "rollout": {"maxSurge": 0, "maxUnavailable": 1},
    }
    create_fleet(kube_api, k8s_namespace, fine, name="fine")


async def test_rollout_strategy_default_moves_clients_once_and_is_configurable(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    created = create_fleet(kube_api, ns, {"redis": {"nodes": [redis_node(redis)]}})
    assert created["spec"]["rollout"] == {"maxSurge": "100%", "maxUnavailable": 0}
    dep = await eventually(lambda: get(kube_api, dep_path(ns)), "the Deployment exists")
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0},
    }
    merge_patch(kube_api, fleet_path(ns, "chat"), {"spec": {"rollout": {"maxSurge": "25%"}}})
    await eventually(
        lambda: (
            ((get(kube_api, dep_path(ns)) or {}).get("spec") or {}).get("strategy")
            == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
        ),
        "the new strategy reaches the Deployment",
    )


def make_pod(api: ControlPlane, ns: str, name: str, ready: bool) -> None:
    labels = resources.selector_labels("chat")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "wsfleet", "image": "ghcr.io/wsfleet/wsfleet:0.1.0"}]},
    }
    ok(api.request("POST", f"/api/v1/namespaces/{ns}/pods", body), 201)
    status = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }
    ok(
        api.request(
            "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", status, content_type=MERGE
        )
    )


def evict(api: ControlPlane, ns: str, name: str) -> int:
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    return api.request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/eviction", body).status


async def test_a_redis_outage_does_not_block_node_drains(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    """Every pod unready (Redis down): AlwaysAllow lets `kubectl drain` evict them; the
    Kubernetes default (IfHealthyBudget) refuses with 429 until the outage ends."""
    ns = operator.ns
    create_fleet(kube_api, ns, {"redis": {"nodes": [redis_node(redis)]}})
    pdb_path = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/chat"
    pdb = await eventually(lambda: get(kube_api, pdb_path), "the PDB exists")
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"

    def outage_status(pdb: dict[str, Any]) -> None:
        # what the disruption controller reports with 2 pods, none ready
        status = {
            "observedGeneration": pdb["metadata"]["generation"],
            "currentHealthy": 0,
            "desiredHealthy": 1,
            "disruptionsAllowed": 0,
            "expectedPods": 2,
        }
        ok(kube_api.request("PATCH", pdb_path + "/status", {"status": status}, content_type=MERGE))

    outage_status(pdb)
    make_pod(kube_api, ns, "chat-a", ready=False)
    assert evict(kube_api, ns, "chat-a") == 201

    merge_patch(
        kube_api,
        fleet_path(ns, "chat"),
        {"spec": {"disruption": {"unhealthyPodEvictionPolicy": "IfHealthyBudget"}}},
    )
    pdb = await eventually(
        lambda: (
            (p := get(kube_api, pdb_path))
            and p["spec"].get("unhealthyPodEvictionPolicy") == "IfHealthyBudget"
            and p
        ),
        "the policy reaches the PDB",
    )
    outage_status(pdb)
    make_pod(kube_api, ns, "chat-b", ready=False)
    assert evict(kube_api, ns, "chat-b") == 429


async def test_ready_only_when_the_rollout_is_complete_with_events(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    ns = operator.ns
    create_fleet(kube_api, ns, {"replicas": 2, "redis": {"nodes": [redis_node(redis)]}})
    dep = await eventually(lambda: get(kube_api, dep_path(ns)), "the Deployment exists")
    generation = dep["metadata"]["generation"]

    def deployment_status(**numbers: int) -> None:
        status = {"observedGeneration": generation, **numbers}
        ok(
            kube_api.request(
                "PATCH", dep_path(ns) + "/status", {"status": status}, content_type=MERGE
            )
        )

    # mid-rollout with a surge: 2 old pods and 1 new one, all ready
    deployment_status(replicas=3, updatedReplicas=1, readyReplicas=3, availableReplicas=3)
    fleet = await fleet_when(
        kube_api,
        ns,
        lambda f: condition(f, "Progressing").get("reason") == "RollingUpdate",
        "Progressing RollingUpdate",
    )
    assert condition(fleet, "Ready")["status"] == "False"
    assert condition(fleet, "Ready")["reason"] == "RolloutInProgress"
    assert condition(fleet, "Reconciling")["status"] == "True"
    assert fleet["status"]["readyReplicas"] == 3

    deployment_status(replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2)
    fleet = await fleet_when(
        kube_api, ns, lambda f: condition(f, "Ready").get("status") == "True", "Ready"
    )
    assert condition(fleet, "Progressing")["reason"] == "Complete"
    assert condition(fleet, "Reconciling")["status"] == "False"
    assert condition(fleet, "Stalled")["status"] == "False"
    await eventually(
        lambda: (
            {"Progressing", "RolloutComplete", "Ready"}
            <= {e["reason"] for e in fleet_events(kube_api, ns)}
        ),
        "Progressing, RolloutComplete and Ready Events",
    )

    merge_patch(kube_api, fleet_path(ns, "chat", "/scale"), {"spec": {"replicas": 4}})
    scaled = await eventually(
        lambda: [e for e in fleet_events(kube_api, ns) if e["reason"] == "Scaled"],
        "a Scaled Event",
    )
    assert scaled[0]["message"] == "replicas 2 -> 4"
    assert scaled[0]["type"] == "Normal"


async def test_deleted_or_hand_edited_children_are_repaired_within_seconds(
    kube_api: ControlPlane, operator: Operator, redis: RedisProcess
) -> None:
    """Repairs come from watching the owned kinds, not from the resync (300 s here)."""
    ns = operator.ns
    create_fleet(kube_api, ns, {"redis": {"nodes": [redis_node(redis)]}})
    svc_path = f"/api/v1/namespaces/{ns}/services/chat"
    cm_path = f"/api/v1/namespaces/{ns}/configmaps/chat-redis-nodes"
    pdb_path = f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/chat"
    paths = [svc_path, cm_path, pdb_path, dep_path(ns)]
    for path in paths:
        await eventually(lambda p=path: get(kube_api, p), f"{path} exists")
    cm_data = get(kube_api, cm_path)["data"]  # type: ignore[index]
    repaired: dict[str, float] = {}

    for path in (svc_path, pdb_path):
        old_uid = get(kube_api, path)["metadata"]["uid"]  # type: ignore[index]
        began = time.monotonic()
        ok(kube_api.request("DELETE", path), 200)
        await eventually(
            lambda p=path, u=old_uid: (o := get(kube_api, p)) and o["metadata"]["uid"] != u,
            f"{path} re-created",
            timeout=5,
        )
        repaired[path.rsplit("/", 2)[-2] + " deleted"] = time.monotonic() - began

    began = time.monotonic()
    merge_patch(
        kube_api,
        dep_path(ns),
        {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 999}}}},
    )
    await eventually(
        lambda: (
            get(kube_api, dep_path(ns))["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]  # type: ignore[index]
            == 45
        ),
        "the Deployment's hand edit reverted",
        timeout=5,
    )
    repaired["deployment edited"] = time.monotonic() - began

    began = time.monotonic()
    merge_patch(kube_api, cm_path, {"data": {"redis": "redis://elsewhere:6379/0\n"}})
    await eventually(
        lambda: get(kube_api, cm_path)["data"] == cm_data,  # type: ignore[index]
        "the ConfigMap's hand edit reverted",
        timeout=5,
    )
    repaired["configmap edited"] = time.monotonic() - began

    # a field the operator never set is someone else's: left alone
    merge_patch(kube_api, svc_path, {"metadata": {"annotations": {"example.com/team": "rt"}}})
    merge_patch(kube_api, svc_path, {"metadata": {"labels": {"example.com/x": "y"}}})
    await eventually(
        lambda: get(kube_api, svc_path)["metadata"]["labels"].get("example.com/x") == "y",  # type: ignore[index]
        "the foreign label stays",
    )
    report = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in repaired.items())
    print(f"\nrepair latency: {report}", file=sys.__stdout__)  # kopf's runner holds sys.stdout
    assert get(kube_api, svc_path)["metadata"]["annotations"] == {"example.com/team": "rt"}  # type: ignore[index]
