"""The CRD, offline: its shape follows the contract, its schema is structural, and sample CRs
validate after the API server's defaulting (re-implemented here), while bad specs are refused.

CEL rules (``x-kubernetes-validations``) need a real API server: tests/k8s/test_operator.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "helm" / "wsfleet" / "crds" / "wsfleets.wsfleet.io.yaml"
EXAMPLES = sorted((ROOT / "operator" / "examples").glob("*.yaml"))


def load_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD_PATH.read_text()))


CRD = load_crd()
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: a missing property with a ``default``
    gets it, then defaulting continues inside (so ``default: {}`` fills nested defaults)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in set(value) - set(schema.get("properties") or {}):
                value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and "items" in schema:
        value = [apply_defaults(schema["items"], v) for v in value]
    return value


def admit(obj: dict[str, Any]) -> dict[str, Any]:
    """Default, then validate against the openAPIV3Schema; returns the stored object."""
    obj = apply_defaults(SCHEMA, copy.deepcopy(obj))
    jsonschema.Draft4Validator(SCHEMA).validate(obj)
    return obj


def wsfleet(**spec: Any) -> dict[str, Any]:
    spec.setdefault("redis", {"nodes": [{"host": "redis-0.redis"}]})
    return {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "metadata": {"name": "chat"},
        "spec": spec,
    }


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path or "<root>", schema)]
    for name, sub in (schema.get("properties") or {}).items():
        out += walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += walk(schema["additionalProperties"], f"{path}{{}}")
    return out


def test_names_scope_and_version() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["metadata"]["name"] == "wsfleets.wsfleet.io"
    spec = CRD["spec"]
    assert spec["group"] == "wsfleet.io"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["plural"], names["singular"], names["shortNames"]) == (
        "WsFleet",
        "wsfleets",
        "wsfleet",
        ["wsf"],
    )
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == ("v1alpha1", True, True)


def test_status_and_scale_subresources() -> None:
    assert VERSION["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    assert SCHEMA["properties"]["status"]["properties"]["selector"]["type"] == "string"


def test_printer_columns() -> None:
    cols = {c["name"]: (c["type"], c["jsonPath"]) for c in VERSION["additionalPrinterColumns"]}
    assert cols == {
        "Replicas": ("integer", ".spec.replicas"),
        "Ready": ("integer", ".status.readyReplicas"),
        "Nodes": ("integer", ".status.liveNodes"),
        "Status": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "Age": ("date", ".metadata.creationTimestamp"),
    }


def test_schema_is_structural_and_defaults_are_valid() -> None:
    for path, node in walk(SCHEMA):
        if node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        ):
            continue
        assert "type" in node, f"{path} has no type (a structural schema needs one everywhere)"
        if "default" in node:
            jsonschema.Draft4Validator(node).validate(apply_defaults(node, node["default"]))
    # status is strictly typed: kopf keeps its state in annotations
    assert "x-kubernetes-preserve-unknown-fields" not in SCHEMA["properties"]["status"]


def test_contract_defaults_are_applied() -> None:
    spec = admit(wsfleet())["spec"]
    assert spec == {
        "replicas": 2,
        "image": "ghcr.io/wsfleet/wsfleet:0.1.0",
        "imagePullPolicy": "IfNotPresent",
        "redis": {"nodes": [{"host": "redis-0.redis", "port": 6379, "db": 0, "tls": False}]},
        "server": {"logFormat": "json", "recovery": True},
        "drain": {"timeoutSeconds": 30, "preStopSeconds": 5},
        "rollout": {"maxSurge": "100%", "maxUnavailable": 0},
        "disruption": {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        "service": {"type": "ClusterIP", "port": 80},
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_sample_crs_are_admitted(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "WsFleet"]
    assert docs
    for doc in docs:
        admit(doc)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"replicas": -1}, "minimum"),
        ({"replicas": "3"}, "type"),
        ({"imagePullPolicy": "Sometimes"}, "enum"),
        ({"redis": {"nodes": []}}, "minItems"),
        ({"redis": {}}, "required"),
        ({"redis": {"nodes": [{"port": 6379}]}}, "required"),
        ({"redis": {"nodes": [{"host": "a", "port": 70000}]}}, "maximum"),
        ({"redis": {"nodes": [{"host": "a", "db": -1}]}}, "minimum"),
        ({"redis": {"nodes": [{"host": "a", "passwordSecretRef": {"name": "s"}}]}}, "required"),
        ({"server": {"logFormat": "xml"}}, "enum"),
        ({"server": {"app": "not a factory"}}, "pattern"),
        ({"server": {"settings": {"max_message_size": 5}}}, "type"),
        ({"drain": {"timeoutSeconds": 0}}, "minimum"),
        ({"drain": {"preStopSeconds": -1}}, "minimum"),
        ({"autoscaling": {"minReplicas": 0}}, "minimum"),
        ({"service": {"type": "ExternalName"}}, "enum"),
        ({"service": {"port": 0}}, "minimum"),
        ({"env": [{"value": "no name"}]}, "required"),
        ({"volumeMounts": [{"name": "v"}]}, "required"),
        ({"disruption": {"unhealthyPodEvictionPolicy": "Never"}}, "enum"),
        ({"podTemplate": {"volumes": [{"secret": {"secretName": "s"}}]}}, "required"),
        ({"podTemplate": {"topologySpreadConstraints": [{"maxSkew": 1}]}}, "required"),
    ],
)
def test_bad_specs_are_refused(spec: dict[str, Any], why: str) -> None:
    with pytest.raises(jsonschema.ValidationError) as err:
        admit(wsfleet(**spec))
    assert err.value.validator == why


def test_a_cr_without_spec_is_refused() -> None:
    with pytest.raises(jsonschema.ValidationError):
        admit({"apiVersion": "wsfleet.io/v1alpha1", "kind": "WsFleet", "metadata": {"name": "x"}})


def test_cel_rules_are_declared_where_the_schema_cannot_say_it() -> None:
    spec = SCHEMA["properties"]["spec"]["properties"]
    rules = [
        spec["redis"]["properties"]["nodes"]["x-kubernetes-validations"],
        spec["server"]["properties"]["settings"]["x-kubernetes-validations"],
        spec["autoscaling"]["x-kubernetes-validations"],
        spec["env"]["x-kubernetes-validations"],
        spec["volumeMounts"]["x-kubernetes-validations"],
        spec["podTemplate"]["properties"]["volumes"]["x-kubernetes-validations"],
        spec["rollout"]["x-kubernetes-validations"],
    ]
    assert all(r and r[0]["rule"] and r[0]["message"] for r in rules)


# ---------------------------------------------------------------------------------------------
# Workload fields carry the Kubernetes API's own schemas


def upstream_definitions() -> dict[str, Any]:
    """The core/v1 definitions of kubernetes-validate (dev extra), Kubernetes 1.37."""
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    defs = json.loads((base / "v1.37.0-local-strict" / "_definitions.json").read_text())
    return dict(defs["$defs"])


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """An upstream JSON schema as the structural schema a CRD states: $refs resolved, nullable
    types made plain, int-or-string marked, descriptions dropped."""
    if "$ref" in node:
        return structural(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "oneOf" in node:
        return {"x-kubernetes-int-or-string": True}
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    (kind,) = [t for t in types if t != "null"]
    out: dict[str, Any] = {"type": kind}
    if "format" in node:
        out["format"] = node["format"]
    if kind == "array":
        out["items"] = structural(node["items"], defs)
    if kind == "object" and "properties" in node:
        out["properties"] = {k: structural(v, defs) for k, v in node["properties"].items()}
    elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(node["additionalProperties"], defs)
    if node.get("required"):
        out["required"] = node["required"]
    out.update({k: v for k, v in node.items() if k.startswith("x-kubernetes")})
    return out


_OURS = ("description", "maxLength", "maxItems", "x-kubernetes-validations")


def without_our_limits(node: Any) -> Any:
    """Our schema minus what we add on top of upstream (descriptions, CEL, size limits)."""
    if isinstance(node, dict):
        return {k: without_our_limits(v) for k, v in node.items() if k not in _OURS}
    return node


@pytest.mark.parametrize(
    ("path", "definition"),
    [
        ("env", "EnvVar"),
        ("envFrom", "EnvFromSource"),
        ("volumeMounts", "VolumeMount"),
        ("podTemplate.tolerations", "Toleration"),
        ("podTemplate.topologySpreadConstraints", "TopologySpreadConstraint"),
        ("podTemplate.imagePullSecrets", "LocalObjectReference"),
    ],
)
def test_workload_fields_have_the_upstream_schema(path: str, definition: str) -> None:
    node = SCHEMA["properties"]["spec"]
    for part in path.split("."):
        node = node["properties"][part]
    defs = upstream_definitions()
    assert node["type"] == "array"
    assert without_our_limits(node["items"]) == structural(
        defs[f"io.k8s.api.core.v1.{definition}"], defs
    )


def test_large_upstream_types_are_kept_whole_and_validated_in_the_deployment() -> None:
    pod = SCHEMA["properties"]["spec"]["properties"]["podTemplate"]["properties"]
    assert pod["affinity"]["x-kubernetes-preserve-unknown-fields"] is True
    volume = pod["volumes"]["items"]
    assert volume["x-kubernetes-preserve-unknown-fields"] is True
    assert volume["required"] == ["name"]  # the list is keyed by name
    assert pod["volumes"]["x-kubernetes-list-map-keys"] == ["name"]
    for name in ("serviceAccountName", "priorityClassName"):
        assert pod[name]["type"] == "string"


def test_a_full_workload_spec_is_admitted() -> None:
    admit(
        wsfleet(
            env=[
                {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4317"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            envFrom=[{"configMapRef": {"name": "app"}}],
            volumeMounts=[{"name": "certs", "mountPath": "/certs", "readOnly": True}],
            podTemplate={
                "volumes": [{"name": "certs", "secret": {"secretName": "certs"}}],
                "imagePullSecrets": [{"name": "registry"}],
                "serviceAccountName": "chat",
                "priorityClassName": "high",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "chat"}},
                    }
                ],
                "affinity": {"podAntiAffinity": {}},
            },
            rollout={"maxSurge": 1, "maxUnavailable": "10%"},
            disruption={"maxUnavailable": "25%", "unhealthyPodEvictionPolicy": "IfHealthyBudget"},
        )
    )
