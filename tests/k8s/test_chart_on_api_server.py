"""The Helm chart against the real API server: its rendered objects pass server-side validation
(``kubectl apply --dry-run=server``), and the operator runs under exactly the RBAC the chart
renders, authenticated with its own ServiceAccount's token."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.chart.k8s_tools import ToolMissing, tool
from tests.k8s.controlplane import ControlPlane
from tests.k8s.harness import (
    ROOT,
    Operator,
    assert_no_permission_errors,
    condition,
    create_fleet,
    eventually,
    fleet_path,
    fleet_when,
    get,
    kubectl_binary,
    ok,
    redis_node,
)
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.k8s

CHART = ROOT / "helm" / "wsfleet"
MERGE = "application/merge-patch+json"
RELEASE = "demo"


def helm_template(namespace: str, *values: str) -> list[dict[str, Any]]:
    try:
        helm = tool("helm")
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    args = [str(helm), "template", RELEASE, str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set-json", value]
    run = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, f"helm template failed: {run.stderr}"
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


def kubectl_apply(api: ControlPlane, docs: list[dict[str, Any]], tmp: Path, *extra: str) -> str:
    manifest = tmp / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    run = subprocess.run(
        [kubectl_binary(), "apply", "-f", str(manifest), *extra],
        env=api.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"kubectl apply {' '.join(extra)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def test_the_rendered_chart_passes_server_side_validation(
    kube_api: ControlPlane, k8s_namespace: str, crd: dict[str, Any], tmp_path: Path
) -> None:
    ns = k8s_namespace
    docs = helm_template(
        ns,
        "fleet.enabled=true",
        "devRedis.enabled=true",
        "networkPolicy.enabled=true",
        'ingress={"enabled":true,"hosts":[{"host":"ws.example.com","paths":[{"path":"/",'
        '"pathType":"Prefix"}]}]}',
        'operator.rbac.readSecrets={"enabled":true,"names":["redis-auth"]}',
        'fleet.autoscaling={"enabled":true,"connectionsPerPod":5000}',
        'fleet.env=[{"name":"OTEL_SERVICE_NAME","value":"chat"}]',
    )
    kinds = {d["kind"] for d in docs}
    wanted = {"Deployment", "ClusterRole", "WsFleet", "Ingress", "NetworkPolicy"}
    assert wanted | {"HorizontalPodAutoscaler"} <= kinds, kinds
    out = kubectl_apply(kube_api, docs, tmp_path, "--dry-run=server")
    assert out.count("(server dry run)") == len(docs), out
    # nothing was created: a dry run only validates
    assert get(kube_api, fleet_path(ns, "demo")) is None

    # the API server refuses what the chart must never render, so the check above has teeth
    (fleet,) = [d for d in docs if d["kind"] == "WsFleet"]
    fleet["spec"]["redis"]["nodes"] = []
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(fleet))
    run = subprocess.run(
        [kubectl_binary(), "apply", "-f", str(manifest), "--dry-run=server"],
        env=kube_api.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "nodes" in run.stderr, run.stderr


async def test_the_operator_runs_with_the_charts_rbac_and_its_service_account_token(
    kube_api: ControlPlane,
    k8s_namespace: str,
    crd: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    redis: RedisProcess,
    tmp_path: Path,
) -> None:
    ns = k8s_namespace
    docs = helm_template(
        ns,
        f'operator.watchNamespaces=["{ns}"]',
        'operator.rbac.readSecrets={"enabled":true,"names":["redis-auth"]}',
    )
    rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    assert {d["kind"] for d in rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "namespaced install only"
    kubectl_apply(kube_api, rbac, tmp_path)
    (account,) = [d for d in rbac if d["kind"] == "ServiceAccount"]
    token = kube_api.service_account_token(ns, account["metadata"]["name"])
    kubeconfig = kube_api.kubeconfig_for("chart-operator", tmp_path / "kubeconfig", token=token)

    assert await redis.command("CONFIG", "SET", "requirepass", "pw-456") == b"+OK"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "redis-auth"},
        "data": {"password": base64.b64encode(b"pw-456").decode()},
    }
    ok(kube_api.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret), 201)

    op = Operator(ns, kubeconfig, monkeypatch)
    op.start()
    try:
        node = redis_node(redis, passwordSecretRef={"name": "redis-auth", "key": "password"})
        create_fleet(kube_api, ns, {"replicas": 3, "redis": {"nodes": [node]}})
        for kind in (
            "apps/v1/namespaces/{ns}/deployments",
            "policy/v1/namespaces/{ns}/poddisruptionbudgets",
        ):
            path = f"/apis/{kind.format(ns=ns)}/chat"
            await eventually(lambda path=path: get(kube_api, path), path)
        for path in (
            f"/api/v1/namespaces/{ns}/services/chat-headless",
            f"/api/v1/namespaces/{ns}/configmaps/chat-redis-nodes",
        ):
            await eventually(lambda path=path: get(kube_api, path), path)
        fleet = await fleet_when(
            kube_api,
            ns,
            lambda f: condition(f, "RedisHealthy").get("status") == "True",
            "status written, the Redis password read from the Secret the chart lets it read",
        )
        assert fleet["status"]["observedGeneration"] == fleet["metadata"]["generation"]
    finally:
        output = op.stop()
    assert_no_permission_errors(output)


def helm_upgrade(
    api: ControlPlane, namespace: str, *values: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`helm upgrade --install` of the chart into ``namespace``, as a user runs it."""
    args = [str(tool("helm")), "upgrade", "--install", RELEASE, str(CHART), "-n", namespace]
    for value in values:
        args += ["--set-json", value]
    run = subprocess.run(
        args, env=api.env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0 or not check, f"helm upgrade failed: {run.stdout}\n{run.stderr}"
    return run


@pytest.mark.parametrize("autoscaling", [True, False], ids=["hpa", "no-hpa"])
def test_helm_upgrade_keeps_the_replicas_an_hpa_chose(
    kube_api: ControlPlane, k8s_namespace: str, crd: dict[str, Any], autoscaling: bool
) -> None:
    """With autoscaling on, the chart leaves spec.replicas to the HPA: an upgrade keeps what the
    HPA set through the scale subresource. Off, the chart's replicas fight the scale: helm 4
    (server-side apply) refuses the upgrade with a conflict; helm 3 would reset them."""
    ns = k8s_namespace
    values = [
        "fleet.enabled=true",
        'fleet.name="chat"',
        'fleet.redis.nodes=[{"host":"redis.data.svc"}]',
        f'fleet.autoscaling={{"enabled":{str(autoscaling).lower()}}}',
        f'operator.watchNamespaces=["{ns}"]',
    ]
    helm_upgrade(kube_api, ns, *values)
    fleet = get(kube_api, fleet_path(ns, "chat"))
    assert fleet is not None
    assert fleet["spec"]["replicas"] == 2  # the CRD default, or the chart's value
    hpa = get(kube_api, f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/chat")
    assert (hpa is not None) is autoscaling
    # what the HPA controller does: PATCH the WsFleet's scale subresource
    scale = fleet_path(ns, "chat", "/scale")
    ok(kube_api.request("PATCH", scale, {"spec": {"replicas": 7}}, content_type=MERGE))
    run = helm_upgrade(kube_api, ns, *values, "fleet.drain.timeoutSeconds=40", check=False)
    fleet = get(kube_api, fleet_path(ns, "chat"))
    assert fleet is not None
    if autoscaling:
        assert run.returncode == 0, run.stderr
        assert fleet["spec"]["drain"]["timeoutSeconds"] == 40  # the upgrade did apply
        assert fleet["spec"]["replicas"] == 7
    else:
        assert run.returncode != 0 and ".spec.replicas" in run.stderr, run.stderr
        assert "conflict" in run.stderr


def test_the_generated_bus_key_survives_upgrades_and_a_rotation_edit(
    kube_api: ControlPlane, k8s_namespace: str, crd: dict[str, Any]
) -> None:
    """`lookup` keeps the generated key: an upgrade neither replaces it with a new random key
    (every node would then refuse the others until they restart) nor undoes a rotation step
    the operator made by editing the Secret."""
    ns = k8s_namespace
    values = [
        "fleet.enabled=true",
        'fleet.name="chat"',
        'fleet.redis.nodes=[{"host":"redis.data.svc"}]',
        f'operator.watchNamespaces=["{ns}"]',
    ]
    path = f"/api/v1/namespaces/{ns}/secrets/chat-bus-key"
    helm_upgrade(kube_api, ns, *values)
    first = get(kube_api, path)
    assert first is not None
    keys = base64.b64decode(first["data"]["keys"]).decode()
    assert keys.startswith("k1:") and len(keys.strip()) == 3 + 48
    fleet = get(kube_api, fleet_path(ns, "chat"))
    assert fleet is not None
    assert fleet["spec"]["busKeySecretRef"] == {"name": "chat-bus-key", "key": "keys"}

    helm_upgrade(kube_api, ns, *values, "fleet.drain.timeoutSeconds=40")
    second = get(kube_api, path)
    assert second is not None and second["data"] == first["data"]

    # rotation, step 1: a new key k2 first (it signs), k1 still verifies
    rotated = "k2:" + "n" * 48 + "\n" + keys
    encoded = base64.b64encode(rotated.encode()).decode()
    ok(kube_api.request("PATCH", path, {"data": {"keys": encoded}}, content_type=MERGE))
    helm_upgrade(kube_api, ns, *values, "fleet.drain.timeoutSeconds=41")
    third = get(kube_api, path)
    assert third is not None and third["data"]["keys"] == encoded
