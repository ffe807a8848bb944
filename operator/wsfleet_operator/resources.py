"""Pure builders: a WsFleet turned into the objects the operator owns.

Every function returns a plain dict, ready for server-side apply, and touches no API. The objects
and their names are fixed by the contract: Deployment ``<name>``, Service ``<name>``, headless
Service ``<name>-headless``, ConfigMap ``<name>-redis-nodes`` and PodDisruptionBudget ``<name>``,
all labelled alike and owned by the WsFleet.

The pod template depends on everything in the spec except the Redis node list itself, which lives
only in the ConfigMap (mounted as a directory, so kubelet refreshes the file in running pods). An
edit of ``spec.redis.nodes`` therefore changes the ConfigMap and never the pod template: no
rollout, no restart. The one exception is a node whose ``passwordSecretRef`` names a Secret not
mounted yet: mounting it needs a new volume, hence a rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from . import constants as c
from .model import FleetSpec

Obj = dict[str, Any]


def labels(name: str) -> dict[str, str]:
    return {
        c.LABEL_NAME: c.APP_NAME,
        c.LABEL_INSTANCE: name,
        c.LABEL_COMPONENT: c.COMPONENT,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
    }


def selector_labels(name: str) -> dict[str, str]:
    return {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: name}


def selector_string(name: str) -> str:
    """The serialized label selector reported in ``status.selector`` (scale subresource, HPA)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


def configmap_name(name: str) -> str:
    return f"{name}-redis-nodes"


def headless_name(name: str) -> str:
    return f"{name}-headless"


def env_name(setting: str) -> str:
    """``max_message_size`` (or ``max-message-size``) -> ``WSFLEET_MAX_MESSAGE_SIZE``."""
    return "WSFLEET_" + setting.replace("-", "_").upper()


def _meta(fleet: FleetSpec, name: str, owner: Mapping[str, Any] | None) -> Obj:
    meta: Obj = {"name": name, "namespace": fleet.namespace, "labels": labels(fleet.name)}
    obj: Obj = {"metadata": meta}
    if owner is not None:
        # kopf.adopt() would also copy the WsFleet's own labels into the children (and into the
        # pod template: a Helm chart-version label would then restart every pod on upgrade), so
        # only its owner-reference part is used.
        kopf.append_owner_reference(obj, owner=kopf.Body(cast(kopf.RawBody, dict(owner))))
    return meta


def configmap(fleet: FleetSpec, owner: Mapping[str, Any] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(fleet, configmap_name(fleet.name), owner),
        "data": {c.CONFIG_KEY: configmap_text(fleet)},
    }


def configmap_text(fleet: FleetSpec) -> str:
    """One Redis address a line, as the node reads ``<config-dir>/redis``."""
    return "".join(f"{address}\n" for address in fleet.addresses)


def container_args(fleet: FleetSpec) -> list[str]:
    args = [
        "--host",
        "0.0.0.0",
        "--port",
        str(c.WS_PORT),
        "--internal-port",
        str(c.INTERNAL_PORT),
        "--config-dir",
        c.CONFIG_DIR,
    ]
    if fleet.app:
        args += ["--app", fleet.app]
    return args


#: The internal port's addresses (``WSFLEET_INTERNAL_HOST``).
INTERNAL_HOST = "$(POD_IP),127.0.0.1"


def container_env(fleet: FleetSpec) -> list[Obj]:
    env: list[Obj] = [
        {"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for var, path in (
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_IP", "status.podIP"),
            # The same for every container restart of the pod: a restarted node proves with it
            # that the lease under its name is its own (wsfleet's instance token).
            ("POD_UID", "metadata.uid"),
        )
    ]
    # Kubernetes expands $(POD_IP) only from variables defined earlier in the list: the internal
    # port listens on the pod IP (kubelet probes, Prometheus) and loopback (kubectl port-forward),
    # never on another interface of the pod.
    env.append({"name": env_name("internal_host"), "value": INTERNAL_HOST})
    # Settings next, then the fields the spec names explicitly (they win on a clash).
    values: dict[str, str] = {env_name(k): v for k, v in sorted(fleet.settings.items())}
    values[env_name("fleet")] = fleet.fleet_id
    values[env_name("log_format")] = fleet.log_format
    values[env_name("recovery")] = "true" if fleet.recovery_on else "false"
    values[env_name("drain_timeout")] = str(fleet.drain_timeout)
    if fleet.bus_key_file is not None:
        values[env_name("bus_key_file")] = fleet.bus_key_file
    env += [{"name": k, "value": v} for k, v in values.items()]
    # Then spec.env (the CRD refuses the names the operator must own); an entry with the name of
    # a setting replaces it, so a setting can come from a Secret (valueFrom.secretKeyRef).
    mine = {e["name"] for e in fleet.env}
    return [e for e in env if e["name"] not in mine] + [dict(e) for e in fleet.env]


def _probe(path: str, *, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": "metrics"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def secret_volume_name(index: int) -> str:
    return f"redis-secret-{index}"


def bus_key_volume(fleet: FleetSpec) -> Obj:
    """The bus-key Secret as a directory (never subPath: kubelet must refresh it on rotation),
    only the key the node reads, readable by the node's group alone."""
    if fleet.bus_key is None:
        raise ValueError("the fleet has no bus key")
    key = fleet.bus_key.key
    return {
        "name": c.BUS_KEY_VOLUME,
        "secret": {
            "secretName": fleet.bus_key.name,
            "items": [{"key": key, "path": key}],
            "defaultMode": 0o440,
        },
    }


def pod_template(fleet: FleetSpec) -> Obj:
    mounts: list[Obj] = [
        {"name": "redis-nodes", "mountPath": c.CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[Obj] = [
        {"name": "redis-nodes", "configMap": {"name": configmap_name(fleet.name)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    for i, secret in enumerate(fleet.secret_names):
        vol = secret_volume_name(i)
        mounts.append({"name": vol, "mountPath": f"{c.SECRETS_DIR}/{secret}", "readOnly": True})
        volumes.append({"name": vol, "secret": {"secretName": secret, "defaultMode": 0o440}})
    if fleet.bus_key is not None:
        mounts.append({"name": c.BUS_KEY_VOLUME, "mountPath": c.BUS_KEY_DIR, "readOnly": True})
        volumes.append(bus_key_volume(fleet))
    mounts += [dict(m) for m in fleet.volume_mounts]
    volumes += [dict(v) for v in fleet.volumes]

    container: Obj = {
        "name": "wsfleet",
        "image": fleet.image,
        "imagePullPolicy": fleet.image_pull_policy,
        "command": ["wsfleet", "serve"],
        "args": container_args(fleet),
        "env": container_env(fleet),
        **({"envFrom": [dict(e) for e in fleet.env_from]} if fleet.env_from else {}),
        "ports": [
            {"name": "ws", "containerPort": c.WS_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": c.INTERNAL_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "resources": dict(fleet.resources),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if fleet.pre_stop > 0:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": fleet.pre_stop}}}

    pod_labels = {**fleet.pod_labels, **labels(fleet.name)}
    spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": fleet.termination_grace,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": c.RUN_AS_USER,
            "runAsGroup": c.RUN_AS_USER,
            "fsGroup": c.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if fleet.node_selector:
        spec["nodeSelector"] = dict(fleet.node_selector)
    if fleet.tolerations:
        spec["tolerations"] = [dict(t) for t in fleet.tolerations]
    if fleet.affinity:
        spec["affinity"] = dict(fleet.affinity)
    if fleet.topology_spread_constraints:
        spec["topologySpreadConstraints"] = [dict(t) for t in fleet.topology_spread_constraints]
    if fleet.image_pull_secrets:
        spec["imagePullSecrets"] = [dict(s) for s in fleet.image_pull_secrets]
    if fleet.service_account_name:
        spec["serviceAccountName"] = fleet.service_account_name
    if fleet.priority_class_name:
        spec["priorityClassName"] = fleet.priority_class_name
    meta: Obj = {"labels": pod_labels}
    if fleet.pod_annotations:
        meta["annotations"] = dict(fleet.pod_annotations)
    return {"metadata": meta, "spec": spec}


def deployment(fleet: FleetSpec, owner: Mapping[str, Any] | None = None) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(fleet, fleet.name, owner),
        "spec": {
            "replicas": fleet.effective_replicas,
            "selector": {"matchLabels": selector_labels(fleet.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": fleet.max_surge,
                    "maxUnavailable": fleet.max_unavailable,
                },
            },
            "template": pod_template(fleet),
        },
    }


def _ws_port(fleet: FleetSpec) -> Obj:
    return {
        "name": "ws",
        "port": fleet.service_port,
        "targetPort": "ws",
        "protocol": "TCP",
        "appProtocol": "kubernetes.io/ws",
    }


def _internal_port() -> Obj:
    return {
        "name": "metrics",
        "port": c.INTERNAL_PORT,
        "targetPort": "metrics",
        "protocol": "TCP",
        "appProtocol": "http",
    }


def service(fleet: FleetSpec, owner: Mapping[str, Any] | None = None) -> Obj:
    """The clients' Service: the WebSocket port only, whatever its type. The internal port
    (metrics, /cluster, /readyz) is on the headless Service alone, so a LoadBalancer or NodePort
    fleet never publishes it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(fleet, fleet.name, owner),
        "spec": {
            "type": fleet.service_type,
            "selector": selector_labels(fleet.name),
            "ports": [_ws_port(fleet)],
        },
    }


def headless_service(fleet: FleetSpec, owner: Mapping[str, Any] | None = None) -> Obj:
    """Every pod, ready or not, by DNS and for scraping (the ServiceMonitor uses this one):
    ``<pod-ip>.<name>-headless``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(fleet, headless_name(fleet.name), owner),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(fleet.name),
            "ports": [_ws_port(fleet), _internal_port()],
        },
    }


def pod_disruption_budget(fleet: FleetSpec, owner: Mapping[str, Any] | None = None) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(fleet, fleet.name, owner),
        "spec": {
            "maxUnavailable": fleet.pdb_max_unavailable,
            # AlwaysAllow by default: in a Redis outage every pod is unready, and the Kubernetes
            # default (IfHealthyBudget) would then block every node drain.
            "unhealthyPodEvictionPolicy": fleet.unhealthy_pod_eviction_policy,
            "selector": {"matchLabels": selector_labels(fleet.name)},
        },
    }


def owned_objects(fleet: FleetSpec, owner: Mapping[str, Any] | None = None) -> list[Obj]:
    """Everything one WsFleet owns, ConfigMap first (the pods mount it)."""
    return [
        configmap(fleet, owner),
        service(fleet, owner),
        headless_service(fleet, owner),
        pod_disruption_budget(fleet, owner),
        deployment(fleet, owner),
    ]
