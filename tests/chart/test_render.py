"""The Helm chart, rendered by the real helm over every value set and checked offline: helm lint,
kubernetes-validate against the Kubernetes OpenAPI schemas, structural schemas for the custom kinds,
and the properties a reviewer would otherwise check by eye."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    CRD,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUE_SETS,
    Manifest,
    of_kind,
    one,
    render,
    run_helm,
    template_args,
    walk,
)
from tests.chart.schemas import BY_KIND

# Oldest supported (Chart.yaml kubeVersion) and newest schema kubernetes-validate ships.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
FLEET_POD_LABELS = {  # what the operator puts on fleet pods (the contract)
    "app.kubernetes.io/name": "wsfleet",
    "app.kubernetes.io/component": "node",
    "app.kubernetes.io/managed-by": "wsfleet-operator",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def pod_templates(docs: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]) for d in of_kind(docs, "Deployment")]


def fleet_pod_labels(fleet: Manifest) -> dict[str, str]:
    """The labels the operator gives the pods of this WsFleet (contract) plus podTemplate.labels."""
    labels = {**FLEET_POD_LABELS, "app.kubernetes.io/instance": fleet["metadata"]["name"]}
    return {**fleet["spec"].get("podTemplate", {}).get("labels", {}), **labels}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ------------------------------------------------------------------------------- lint + schemas


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_strict(helm: Path, value_set: str) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    if VALUE_SETS[value_set] is not None:
        args += ["-f", str(VALUE_SETS[value_set])]
    proc = run_helm(helm, *args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_objects_validate(rendered: dict[str, list[Manifest]], value_set: str) -> None:
    """Built-in kinds against the Kubernetes OpenAPI schemas (strict: unknown fields fail);
    custom kinds against their structural schemas; any other kind is a test failure."""
    docs = rendered[value_set]
    assert docs
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in BY_KIND:
            jsonschema.validate(doc, BY_KIND[doc["kind"]])
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{value_set}: {name} is invalid for Kubernetes {version}: {exc}")
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{value_set}: no schema for {name}: add one to tests/chart/schemas.py")


def test_rendered_wsfleets_match_the_crd(rendered: dict[str, list[Manifest]]) -> None:
    """Every WsFleet the chart renders is valid against the CRD's openAPIV3Schema."""
    if not CRD.exists():
        pytest.skip(f"{CRD.relative_to(CHART.parents[1])} is not written yet (operator side)")
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["group"] == "wsfleet.io"
    assert crd["spec"]["names"]["kind"] == "WsFleet"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = version["schema"]["openAPIV3Schema"]
    fleets = [d for docs in rendered.values() for d in of_kind(docs, "WsFleet")]
    assert fleets
    for fleet in fleets:
        jsonschema.validate({"spec": fleet["spec"]}, {**schema, "required": ["spec"]})


def test_every_value_set_renders_something_different(rendered: dict[str, list[Manifest]]) -> None:
    kinds = {name: sorted(d["kind"] for d in docs) for name, docs in rendered.items()}
    assert len({json.dumps(k) for k in kinds.values()}) == len(kinds), kinds


# ---------------------------------------------------------------------------- security, probes


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_are_locked_down(rendered: dict[str, list[Manifest]], value_set: str) -> None:
    for name, template in pod_templates(rendered[value_set]):
        spec = template["spec"]
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc.get("runAsUser", 1) != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        assert all("hostPath" not in v for v in spec.get("volumes", [])), name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            where = f"{value_set}: {name}/{c['name']}"
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["runAsNonRoot"] is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "livenessProbe" in c, where
            assert "readinessProbe" in c or "startupProbe" in c, where
            assert c["resources"].get("requests") and c["resources"].get("limits"), where
            # A read-only root filesystem still needs a writable /tmp or data dir, from a volume.
            assert c.get("volumeMounts"), where


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_subpath_anywhere(rendered: dict[str, list[Manifest]], value_set: str) -> None:
    """subPath mounts never see ConfigMap updates (the Redis-nodes hot-plug depends on that)."""
    for doc in rendered[value_set]:
        for path, _ in walk(doc):
            assert not path.endswith((".subPath", ".subPathExpr")), f"{doc['kind']}{path}"


def test_operator_probes_use_the_entrypoint_liveness_port(
    rendered: dict[str, list[Manifest]],
) -> None:
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    port = int(re.search(r"--liveness=http://0\.0\.0\.0:(\d+)/healthz", dockerfile).group(1))
    container = one(rendered["defaults"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    (health,) = [p for p in container["ports"] if p["name"] == "health"]
    assert health["containerPort"] == port
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


# ------------------------------------------------------------------------------------ operator


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_operator_deployment(rendered: dict[str, list[Manifest]], value_set: str) -> None:
    docs = rendered[value_set]
    dep = one(docs, "Deployment", f"{RELEASE}-wsfleet-operator")
    assert dep["metadata"]["namespace"] == NAMESPACE
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # kopf --standalone: never two at once
    pod = dep["spec"]["template"]["spec"]
    sa = one(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/wsfleet/wsfleet-operator:0.1.0"
    assert "command" not in container  # the image's ENTRYPOINT: python -m wsfleet_operator
    assert container["args"] == ["--log-format=json"]
    values = yaml.safe_load(VALUE_SETS[value_set].read_text()) if VALUE_SETS[value_set] else {}
    namespaces = values.get("operator", {}).get("watchNamespaces", [])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WSFLEET_OPERATOR_NAMESPACES"] == ",".join(namespaces)
    assert env["WSFLEET_OPERATOR_METRICS_PORT"] == "9090"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8080,
        "metrics": 9090,
    }


def _rules(role: Manifest) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_rbac_yaml_rules() -> set[tuple[str, str, str]]:
    """The ClusterRole of operator/rbac.yaml: the rules the operator's own tests run it with
    against a real API server."""
    docs = yaml.safe_load_all((ROOT / "operator" / "rbac.yaml").read_text())
    (role,) = [d for d in docs if d and d["kind"] == "ClusterRole"]
    return _rules(role)


def _plain(rules: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    return {r for r in rules if r[1] != "secrets"}


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_operator_rbac_is_least_privilege(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    """The chart grants exactly the operator's tested rule list (operator/rbac.yaml), Secrets only
    on request and then by name, and namespaced rights only where the operator watches."""
    docs = rendered[value_set]
    expected = _plain(operator_rbac_yaml_rules())
    sa = one(docs, "ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    values = yaml.safe_load(VALUE_SETS[value_set].read_text()) if VALUE_SETS[value_set] else {}
    op_values = values.get("operator", {})
    namespaces = op_values.get("watchNamespaces", [])
    secrets = op_values.get("rbac", {}).get("readSecrets", {})
    roles = [
        r
        for r in of_kind(docs, "Role") + of_kind(docs, "ClusterRole")
        if not r["metadata"]["name"].endswith("-bus-key")  # test_the_bus_key_*
    ]
    assert roles
    for role in roles:
        rules = _rules(role)
        assert not [r for r in rules if "*" in r], role["metadata"]["name"]
        assert _plain(rules) == expected
        secret_rules = [r for r in role["rules"] if "secrets" in r["resources"]]
        if secrets.get("enabled"):
            assert secret_rules == [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "verbs": ["get"],
                    "resourceNames": secrets["names"],
                }
            ]
        else:
            assert not secret_rules, "pods mount the Secrets: the operator needs no read by default"
    if namespaces:
        assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
        assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
        for role in roles:
            (binding,) = [
                b
                for b in of_kind(docs, "RoleBinding")
                if b["metadata"]["namespace"] == role["metadata"]["namespace"]
                and b["roleRef"]["name"] == role["metadata"]["name"]
            ]
            assert binding["roleRef"] == {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": role["metadata"]["name"],
            }
            assert binding["subjects"] == [subject]
    else:
        assert roles == of_kind(docs, "ClusterRole")
        cluster_role = one(docs, "ClusterRole")
        binding = one(docs, "ClusterRoleBinding")
        assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
        assert binding["subjects"] == [subject]


# -------------------------------------------------------------------------- labels, selectors


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_labels_and_selectors_are_consistent(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    docs = rendered[value_set]
    pods = {name: t["metadata"]["labels"] for name, t in pod_templates(docs)}
    pods |= {
        f"fleet {f['metadata']['name']}": fleet_pod_labels(f) for f in of_kind(docs, "WsFleet")
    }
    for doc in docs:
        meta = doc["metadata"]
        assert DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "wsfleet"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["helm.sh/chart"] == "wsfleet-0.1.0"
    for dep in of_kind(docs, "Deployment"):
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selects(selector, dep["spec"]["template"]["metadata"]["labels"])
        # A Deployment's selector must not also catch another workload's pods.
        others = [n for n, labels in pods.items() if n != dep["metadata"]["name"]]
        assert not [n for n in others if selects(selector, pods[n])], dep["metadata"]["name"]
    for svc in of_kind(docs, "Service"):
        matched = [n for n, labels in pods.items() if selects(svc["spec"]["selector"], labels)]
        assert len(matched) == 1, (svc["metadata"]["name"], matched)
        targets = {p["targetPort"] for p in svc["spec"]["ports"]}
        (container,) = [
            t["spec"]["containers"][0] for n, t in pod_templates(docs) if n == matched[0]
        ]
        assert targets <= {p["name"] for p in container["ports"]}
    for policy in of_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        matched = [n for n, labels in pods.items() if selects(selector, labels)]
        assert len(matched) == 1, (policy["metadata"]["name"], matched)
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if set(peer) == {"podSelector"}:  # same-namespace pods: they must exist
                    sel = peer["podSelector"]["matchLabels"]
                    assert [n for n, labels in pods.items() if selects(sel, labels)], sel


def test_operator_and_fleet_pods_never_share_a_selector(
    helm: Path, rendered: dict[str, list[Manifest]]
) -> None:
    """Even when the release and the fleet have the same name, the operator's pods are not picked
    up by the fleet Service the operator creates (it selects name=wsfleet + instance)."""
    docs = rendered["dev-redis"]
    fleet = one(docs, "WsFleet")
    operator = one(docs, "Deployment", f"{RELEASE}-wsfleet-operator")
    op_labels = operator["spec"]["template"]["metadata"]["labels"]
    fleet_selector = {
        "app.kubernetes.io/name": "wsfleet",
        "app.kubernetes.io/instance": fleet["metadata"]["name"],
    }
    assert not selects(fleet_selector, op_labels)
    same = render(helm, VALUE_SETS["dev-redis"], "--set", f"fleet.name={RELEASE}")
    op_labels = one(same, "Deployment", f"{RELEASE}-wsfleet-operator")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert not selects({**fleet_selector, "app.kubernetes.io/instance": RELEASE}, op_labels)


# --------------------------------------------------------------------------------- the fleet


def test_no_fleet_by_default(rendered: dict[str, list[Manifest]]) -> None:
    assert not of_kind(rendered["defaults"], "WsFleet")
    assert not of_kind(rendered["fleet-off"], "WsFleet")
    kinds = sorted(d["kind"] for d in rendered["defaults"])
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"]


def test_fleet_spec_from_values(rendered: dict[str, list[Manifest]]) -> None:
    fleet = one(rendered["redis-three"], "WsFleet", "chat")
    spec = fleet["spec"]
    assert fleet["metadata"]["namespace"] == NAMESPACE
    # an HPA owns spec.replicas: the chart leaves it out, so `helm upgrade` never resets it
    assert "replicas" not in spec
    assert spec["image"] == "ghcr.io/wsfleet/wsfleet:0.1.0"  # the CRD's default image
    assert spec["redis"]["nodes"] == [
        {"host": "redis-0.redis.data.svc"},
        {"host": "redis-1.redis.data.svc", "port": 6380, "db": 1},
        {
            "host": "redis-2.example.internal",
            "port": 6380,
            "tls": True,
            "passwordSecretRef": {"name": "redis-auth", "key": "password"},
        },
    ]
    assert spec["server"] == {
        "app": "myapp.main:setup",
        "logFormat": "json",
        "recovery": True,
        # settings become env vars: strings, and integers stay integers (not 1.048576e+06)
        "settings": {"max_message_size": "1048576", "serialization": "json"},
    }
    assert spec["drain"] == {"timeoutSeconds": 45, "preStopSeconds": 10}
    assert spec["autoscaling"] == {"minReplicas": 2, "maxReplicas": 10}
    assert spec["service"] == {"type": "LoadBalancer", "port": 443}
    assert spec["podTemplate"] == {
        "labels": {"team": "realtime"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "priorityClassName": "realtime",
        "volumes": [{"name": "app-certs", "secret": {"secretName": "app-certs"}}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "chat"}},
            }
        ],
    }
    assert spec["env"] == [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability:4317"}
    ]
    assert spec["volumeMounts"] == [{"name": "app-certs", "mountPath": "/certs", "readOnly": True}]
    assert spec["rollout"] == {"maxSurge": "25%", "maxUnavailable": 0}
    assert spec["disruption"] == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def test_the_default_fleet_has_requests_rollout_and_pdb_policy(helm: Path) -> None:
    docs = render(helm, None, "--set", "fleet.enabled=true", "--set", "fleet.redis.nodes[0].host=r")
    spec = one(docs, "WsFleet")["spec"]
    assert spec["replicas"] == 2
    assert spec["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}  # a CPU HPA works
    assert spec["rollout"] == {"maxSurge": "100%", "maxUnavailable": 0}
    assert spec["disruption"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "autoscaling" not in spec
    assert not of_kind(docs, "HorizontalPodAutoscaler")
    assert spec["server"]["recovery"] is True  # connection state recovery: on in the chart


def test_recovery_can_be_turned_off(helm: Path) -> None:
    docs = render(
        helm,
        None,
        *("--set", "fleet.enabled=true", "--set", "fleet.redis.nodes[0].host=r"),
        *("--set", "fleet.server.recovery=false"),
    )
    assert one(docs, "WsFleet")["spec"]["server"]["recovery"] is False


def test_the_hpa_scales_the_wsfleet_on_cpu_and_connections_per_pod(
    rendered: dict[str, list[Manifest]],
) -> None:
    hpa = one(rendered["redis-three"], "HorizontalPodAutoscaler", "chat")
    spec = hpa["spec"]
    # the WsFleet's scale subresource, never the Deployment (the operator owns its replicas)
    assert spec["scaleTargetRef"] == {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "name": "chat",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "wsfleet_connections"},
                "target": {"type": "AverageValue", "averageValue": "5000"},
            },
        },
    ]


def test_autoscaling_without_a_metric_is_refused(helm: Path) -> None:
    proc = run_helm(
        helm,
        *template_args(
            None,
            "--set",
            "fleet.enabled=true",
            "--set",
            "fleet.redis.nodes[0].host=r",
            "--set",
            "fleet.autoscaling.enabled=true",
            "--set",
            "fleet.autoscaling.targetCPUUtilizationPercentage=0",
        ),
        check=False,
    )
    assert proc.returncode != 0
    assert "needs targetCPUUtilizationPercentage or connectionsPerPod" in proc.stderr


def test_dev_redis_feeds_the_fleet(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["dev-redis"]
    svc = one(docs, "Service", f"{RELEASE}-wsfleet-dev-redis")
    fleet = one(docs, "WsFleet", f"{RELEASE}-wsfleet")
    assert fleet["spec"]["redis"]["nodes"] == [
        {"host": f"{svc['metadata']['name']}.{NAMESPACE}.svc", "port": 6379, "db": 0}
    ]
    dep = one(docs, "Deployment", f"{RELEASE}-wsfleet-dev-redis")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["redis-server"]  # no root-only entrypoint script
    assert dep["metadata"]["annotations"]["wsfleet.io/warning"].startswith("single-node Redis")


def test_dev_redis_notes_warn_loudly(helm: Path) -> None:
    def notes(values: Path | None) -> str:
        args = ["install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE]
        out = run_helm(helm, *args, *(["-f", str(values)] if values else [])).stdout
        return out.split("NOTES:", 1)[1]

    dev = notes(VALUE_SETS["dev-redis"])
    assert "NOT FOR PRODUCTION" in dev.split("wsfleet 0.1.0 is installed")[0]
    assert f"port-forward service/{RELEASE}-wsfleet 8080:80" in dev
    assert "ws://127.0.0.1:8080/ws" in dev
    assert "NOT FOR PRODUCTION" not in notes(VALUE_SETS["redis-three"])
    ingress = notes(VALUE_SETS["ingress-gateway"])
    assert "wss://ws.example.com/ws" in ingress and " 8080:80" not in ingress
    assert "No fleet yet" in notes(None)


# -------------------------------------------------------------------- ingress, gateway, policy


def test_ingress_is_websocket_friendly(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["ingress-gateway"]
    fleet = one(docs, "WsFleet")
    ingress = one(docs, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "ws-example-tls", "hosts": ["ws.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "ws.example.com"
    (path,) = rule["http"]["paths"]
    # Only the client port of the operator's Service: metrics stay off the public entry point.
    assert path["backend"] == {
        "service": {"name": fleet["metadata"]["name"], "port": {"name": "ws"}}
    }
    route = one(docs, "HTTPRoute")
    (route_rule,) = route["spec"]["rules"]
    assert route_rule["backendRefs"] == [{"name": fleet["metadata"]["name"], "port": 80}]
    assert route_rule["timeouts"] == {"request": "0s"}
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route["spec"]["hostnames"] == ["ws.example.com"]


def test_annotations_are_values_only(helm: Path, tmp_path: Path) -> None:
    """Controller-specific annotations come from values alone: swap them for another controller
    (Helm merges maps, so the nginx defaults are removed with null)."""
    haproxy = tmp_path / "haproxy.yaml"
    haproxy.write_text(
        "ingress:\n"
        "  annotations:\n"
        "    nginx.ingress.kubernetes.io/proxy-read-timeout: null\n"
        "    nginx.ingress.kubernetes.io/proxy-send-timeout: null\n"
        "    haproxy.org/timeout-tunnel: 3600s\n"
    )
    docs = render(helm, VALUE_SETS["ingress-gateway"], "-f", str(haproxy))
    assert one(docs, "Ingress")["metadata"]["annotations"] == {
        "haproxy.org/timeout-tunnel": "3600s"
    }


def test_network_policies(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["redis-three"]
    fleet_np = one(docs, "NetworkPolicy", "chat")
    assert fleet_np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = [r["ports"][0]["port"] for r in fleet_np["spec"]["ingress"]]
    assert ports == [8080, 9100]
    egress = fleet_np["spec"]["egress"]
    assert {p["port"] for p in egress[0]["ports"]} == {53}
    assert [p["port"] for p in egress[1]["ports"]] == [
        6379,
        6380,
    ]  # from the node list, deduplicated
    assert egress[1]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}}}
    ]
    op_np = one(docs, "NetworkPolicy", f"{RELEASE}-wsfleet-operator")
    assert [r["ports"][0]["port"] for r in op_np["spec"]["ingress"]] == [8080, 9090]
    assert [p["port"] for p in op_np["spec"]["egress"][1]["ports"]] == [443, 6443]
    assert [p["port"] for p in op_np["spec"]["egress"][2]["ports"]] == [6379, 6380]
    dev = one(rendered["dev-redis"], "NetworkPolicy", f"{RELEASE}-wsfleet-dev-redis")
    assert dev["spec"]["egress"] == []
    assert not of_kind(rendered["defaults"], "NetworkPolicy")
    # the internal port (and the operator's metrics) only from the monitoring namespace by default
    monitoring = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert fleet_np["spec"]["ingress"][1]["from"] == monitoring
    assert op_np["spec"]["ingress"][1]["from"] == monitoring
    assert "from" not in fleet_np["spec"]["ingress"][0]  # clients: anyone, by default
    # Without a fleet only the operator's policy is rendered.
    assert [d["metadata"]["name"] for d in of_kind(rendered["fleet-off"], "NetworkPolicy")] == [
        f"{RELEASE}-wsfleet-operator"
    ]


# ------------------------------------------------------------------------------- monitoring


def test_service_monitor_scrapes_the_metrics_port_once(rendered: dict[str, list[Manifest]]) -> None:
    sm = one(rendered["monitoring"], "ServiceMonitor")
    assert sm["spec"]["selector"] == {"matchLabels": FLEET_POD_LABELS}
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # the internal port is on the headless Service only: keep it, and name the job after the fleet
    assert endpoint["relabelings"] == [
        {
            "sourceLabels": ["__meta_kubernetes_service_name"],
            "regex": ".+-headless",
            "action": "keep",
        },
        {
            "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
            "targetLabel": "fleet",
        },
        {
            "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
            "targetLabel": "job",
        },
    ]


def test_operator_pod_monitor(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["monitoring"]
    pm = one(docs, "PodMonitor")
    operator = one(docs, "Deployment", f"{RELEASE}-wsfleet-operator")["spec"]["template"]
    assert selects(pm["spec"]["selector"]["matchLabels"], operator["metadata"]["labels"])
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in operator["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


def test_dashboards_are_sidecar_configmaps(rendered: dict[str, list[Manifest]]) -> None:
    maps = [
        d
        for d in of_kind(rendered["monitoring"], "ConfigMap")
        if "-dashboard-" in d["metadata"]["name"]
    ]
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert len(files) == 3 and len(maps) == 3
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "wsfleet"}
        ((key, text),) = cm["data"].items()
        assert json.loads(text) == json.loads((CHART / "dashboards" / key).read_text())
    assert not of_kind(rendered["defaults"], "ConfigMap")


# ------------------------------------------------------------------ values.schema.json, failures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "fleet.replicas=-1"], "at '/fleet/replicas': minimum: got -1, want 0"),
        (["--set", "fleet.replica=3"], "additional properties 'replica' not allowed"),
        (["--set", "bogus=1"], "additional properties 'bogus' not allowed"),
        (
            ["--set", "fleet.redis.nodes[0].host=r", "--set", "fleet.redis.nodes[0].port=70000"],
            "maximum",
        ),
        (["--set", "fleet.redis.nodes[0].hots=r"], "additional properties 'hots' not allowed"),
        (["--set", "fleet.name=Chat"], "/fleet/name"),
        (["--set", "fleet.service.type=Ingress"], "/fleet/service/type"),
        (["--set", "operator.logFormat=xml"], "/operator/logFormat"),
        (["--set", "fleet.drain.timeoutSeconds=0"], "/fleet/drain/timeoutSeconds"),
        (
            ["--set", "monitoring.serviceMonitor.interval=soon"],
            "/monitoring/serviceMonitor/interval",
        ),
        (["--set", "ingress.hosts[0].paths[0].path=api"], "/ingress/hosts/0/paths/0/path"),
        (["--set", "fleet.enabled=true"], "fleet.enabled is true but the fleet has no Redis node"),
        (
            [
                "--set",
                "fleet.enabled=true",
                "--set-json",
                'fleet.redis.nodes=[{"host":"r"},{"host":"r","port":6379,"db":0}]',
            ],
            "fleet.redis.nodes lists the Redis node r:6379/0 twice",
        ),
        (["--set", "fleet.server.settings.MaxSize=1"], "invalid propertyName 'MaxSize'"),
        (["--set", "ingress.enabled=true"], "ingress.enabled needs a fleet"),
        (
            ["--set", "httpRoute.enabled=true", "--set", "fleet.name=chat"],
            "httpRoute.enabled needs httpRoute.parentRefs",
        ),
        (
            ["--set", "operator.serviceAccount.create=false"],
            "operator.serviceAccount.name is required",
        ),
    ],
)
def test_bad_values_are_refused(helm: Path, args: list[str], message: str) -> None:
    proc = run_helm(helm, *template_args(None, *args), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_values_yaml_is_complete_against_the_schema() -> None:
    """Every key of values.yaml is declared in values.schema.json (and the reverse), so the strict
    schema documents exactly the chart's settings."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def compare(value: Any, node: dict[str, Any], path: str) -> None:
        # Inline objects only: "$ref" definitions are generic types (image, resources, ...).
        if not isinstance(value, dict) or not value or "properties" not in node:
            return
        declared = set(node["properties"]) - {"global"}
        assert set(value) == declared, (
            f"{path or '/'}: values {sorted(value)} schema {sorted(declared)}"
        )
        for key, sub in value.items():
            compare(sub, node["properties"][key], f"{path}/{key}")

    compare(values, schema, "")
