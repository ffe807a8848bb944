"""The pure builders against every point of the contract: names, labels, owner references,
the ConfigMap and its directory mount, probes, grace period, env, secrets, security."""

from __future__ import annotations

from typing import Any

import pytest

from wsfleet_operator import resources
from wsfleet_operator.model import FleetSpec, RedisNodeSpec, SpecError

OWNER = {
    "apiVersion": "wsfleet.io/v1alpha1",
    "kind": "WsFleet",
    "metadata": {"name": "chat", "namespace": "prod", "uid": "0000-1111"},
}
LABELS = {
    "app.kubernetes.io/name": "wsfleet",
    "app.kubernetes.io/instance": "chat",
    "app.kubernetes.io/component": "node",
    "app.kubernetes.io/managed-by": "wsfleet-operator",
}
SELECTOR = {"app.kubernetes.io/name": "wsfleet", "app.kubernetes.io/instance": "chat"}


def fleet(**spec: Any) -> FleetSpec:
    spec.setdefault("redis", {"nodes": [{"host": "redis-0.redis"}]})
    return FleetSpec.parse("chat", "prod", spec)


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (only,) = obj["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(obj)["env"]}


def test_owned_objects_names_kinds_labels_and_owner_references() -> None:
    objs = resources.owned_objects(fleet(), owner=OWNER)
    got = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objs}
    assert got == {
        ("apps/v1", "Deployment", "chat"),
        ("v1", "Service", "chat"),
        ("v1", "Service", "chat-headless"),
        ("v1", "ConfigMap", "chat-redis-nodes"),
        ("policy/v1", "PodDisruptionBudget", "chat"),
    }
    for obj in objs:
        meta = obj["metadata"]
        assert meta["namespace"] == "prod"
        assert meta["labels"] == LABELS
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "wsfleet.io/v1alpha1",
                "kind": "WsFleet",
                "name": "chat",
                "uid": "0000-1111",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    assert objs[0]["kind"] == "ConfigMap"  # created before the pods that mount it


def test_the_fleets_own_labels_never_reach_the_children() -> None:
    owner = {**OWNER, "metadata": {**OWNER["metadata"], "labels": {"helm.sh/chart": "x-1"}}}
    for obj in resources.owned_objects(fleet(), owner=owner):
        assert "helm.sh/chart" not in obj["metadata"]["labels"]
    dep = resources.deployment(fleet(), owner=owner)
    assert "helm.sh/chart" not in dep["spec"]["template"]["metadata"]["labels"]


def test_configmap_lists_one_address_a_line_with_tls_and_password_files() -> None:
    f = fleet(
        redis={
            "nodes": [
                {"host": "redis-0.redis"},
                {"host": "r1", "port": 6380, "db": 2, "tls": True},
                {"host": "r2", "passwordSecretRef": {"name": "auth", "key": "pw"}},
                {"host": "::1", "port": 7000},
            ]
        }
    )
    cm = resources.configmap(f, owner=OWNER)
    assert cm["metadata"]["name"] == "chat-redis-nodes"
    assert list(cm["data"]) == ["redis"]
    assert cm["data"]["redis"] == (
        "redis://redis-0.redis:6379/0\n"
        "rediss://r1:6380/2\n"
        "redis://r2:6379/0?password_file=/etc/wsfleet/redis-secrets/auth/pw\n"
        "redis://[::1]:7000/0\n"
    )
    assert [n.key for n in f.redis_nodes] == [
        "redis-0.redis:6379/0",
        "r1:6380/2",
        "r2:6379/0",
        "::1:7000/0",
    ]


def test_configmap_is_mounted_as_a_directory_without_subpath_env_or_checksum() -> None:
    dep = resources.deployment(fleet(), owner=OWNER)
    pod = dep["spec"]["template"]
    mounts = {m["name"]: m for m in container(dep)["volumeMounts"]}
    assert mounts["redis-nodes"] == {
        "name": "redis-nodes",
        "mountPath": "/etc/wsfleet/redis-nodes",
        "readOnly": True,
    }
    assert all("subPath" not in m and "subPathExpr" not in m for m in mounts.values())
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["redis-nodes"]["configMap"] == {"name": "chat-redis-nodes"}
    text = repr(pod)
    assert "checksum" not in text
    assert "redis-0.redis" not in text  # the node list is in the ConfigMap only
    assert all("configMapKeyRef" not in repr(e) for e in container(dep)["env"])


def test_editing_redis_nodes_never_changes_the_pod_template() -> None:
    before = resources.deployment(fleet(), owner=OWNER)
    after = resources.deployment(
        fleet(redis={"nodes": [{"host": "a"}, {"host": "b", "port": 6390, "tls": True}]}),
        owner=OWNER,
    )
    assert before == after


def test_password_secrets_are_mounted_read_only_as_directories() -> None:
    f = fleet(
        redis={
            "nodes": [
                {"host": "a", "passwordSecretRef": {"name": "zeta", "key": "pw"}},
                {"host": "b", "passwordSecretRef": {"name": "alpha", "key": "password"}},
                {"host": "c", "passwordSecretRef": {"name": "zeta", "key": "other"}},
            ]
        }
    )
    dep = resources.deployment(f, owner=OWNER)
    mounts = [m for m in container(dep)["volumeMounts"] if m["name"].startswith("redis-secret")]
    volumes = [v for v in dep["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert [(m["mountPath"], m["readOnly"]) for m in mounts] == [
        ("/etc/wsfleet/redis-secrets/alpha", True),
        ("/etc/wsfleet/redis-secrets/zeta", True),
    ]
    assert [v["secret"]["secretName"] for v in volumes] == ["alpha", "zeta"]
    assert {m["name"] for m in mounts} == {v["name"] for v in volumes}
    assert all("items" not in v["secret"] and "subPath" not in repr(mounts) for v in volumes)


def test_command_line_ports_and_app() -> None:
    c = container(resources.deployment(fleet(), owner=OWNER))
    assert c["command"] + c["args"] == [
        "wsfleet",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--internal-port",
        "9100",
        "--config-dir",
        "/etc/wsfleet/redis-nodes",
    ]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"ws": 8080, "metrics": 9100}
    c2 = container(resources.deployment(fleet(server={"app": "chat.app:setup"})))
    assert c2["args"][-2:] == ["--app", "chat.app:setup"]


def test_probes_on_the_internal_port() -> None:
    c = container(resources.deployment(fleet()))
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # the startup probe allows a slow start before liveness takes over
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize(
    ("drain", "pre_stop", "grace"),
    [
        ({}, 5, 45),
        ({"timeoutSeconds": 60, "preStopSeconds": 10}, 10, 80),
        ({"preStopSeconds": 0}, 0, 40),
    ],
)
def test_grace_period_is_prestop_plus_drain_plus_ten(
    drain: dict[str, int], pre_stop: int, grace: int
) -> None:
    dep = resources.deployment(fleet(drain=drain))
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == grace
    c = container(dep)
    if pre_stop:
        assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": pre_stop}}}
    else:
        assert "lifecycle" not in c
    assert env_of(dep)["WSFLEET_DRAIN_TIMEOUT"] == str(grace - pre_stop - 10)


def test_env_has_the_downward_api_and_every_setting() -> None:
    dep = resources.deployment(
        fleet(
            server={
                "logFormat": "text",
                "settings": {
                    "max_message_size": "65536",
                    "serialization": "json",
                    "log_format": "json",  # the explicit field wins
                },
            }
        )
    )
    env = env_of(dep)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}  # the instance token
    assert env["WSFLEET_MAX_MESSAGE_SIZE"] == "65536"
    assert env["WSFLEET_SERIALIZATION"] == "json"
    assert env["WSFLEET_LOG_FORMAT"] == "text"
    names = [e["name"] for e in container(dep)["env"]]
    assert len(names) == len(set(names))
    assert resources.env_name("max-message-size") == "WSFLEET_MAX_MESSAGE_SIZE"


def test_recovery_is_on_by_default_also_on_a_redis_cluster_and_off_when_asked() -> None:
    assert env_of(resources.deployment(fleet()))["WSFLEET_RECOVERY"] == "true"
    off = fleet(server={"recovery": False})
    assert env_of(resources.deployment(off))["WSFLEET_RECOVERY"] == "false"
    cluster = fleet(redis={"nodes": [{"host": "c", "mode": "cluster", "seeds": ["d:6379"]}]})
    assert env_of(resources.deployment(cluster))["WSFLEET_RECOVERY"] == "true"
    with pytest.raises(SpecError, match=r"spec\.server\.recovery"):
        fleet(server={"settings": {"recovery": "false"}})
    with pytest.raises(SpecError, match="true or false"):
        fleet(server={"recovery": "yes"})


def test_the_internal_port_binds_the_pod_ip_and_loopback_only() -> None:
    # Kubernetes expands $(POD_IP) only when POD_IP is defined earlier in the list; a later or
    # missing POD_IP would leave the text as it is and the node would refuse it.
    dep = resources.deployment(fleet(env=[{"name": "EXTRA", "value": "1"}]))
    c = container(dep)
    names = [e["name"] for e in c["env"]]
    entry = c["env"][names.index("WSFLEET_INTERNAL_HOST")]
    assert entry == {"name": "WSFLEET_INTERNAL_HOST", "value": "$(POD_IP),127.0.0.1"}
    assert names.index("POD_IP") < names.index("WSFLEET_INTERNAL_HOST")
    assert c["env"][names.index("POD_IP")] == {
        "name": "POD_IP",
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    }
    # no flag overrides it (flags win over the environment)
    assert not any(a.startswith("--internal-host") for a in c["args"])


def test_security_context_non_root_read_only_drop_all_and_tmp() -> None:
    dep = resources.deployment(fleet())
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False


def test_deployment_replicas_selector_strategy_and_pod_template_fields() -> None:
    dep = resources.deployment(
        fleet(
            replicas=4,
            image="example/wsfleet:9",
            imagePullPolicy="Always",
            resources={"limits": {"memory": "256Mi"}},
            podTemplate={
                "labels": {"team": "rt", "app.kubernetes.io/name": "not-this"},
                "annotations": {"a": "b"},
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "affinity": {"nodeAffinity": {}},
            },
        )
    )
    spec = dep["spec"]
    assert spec["replicas"] == 4
    assert spec["selector"] == {"matchLabels": SELECTOR}
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0},
    }
    tmpl = spec["template"]
    assert tmpl["metadata"]["labels"] == {"team": "rt", **LABELS}  # ours win
    assert tmpl["metadata"]["annotations"] == {"a": "b"}
    assert tmpl["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert tmpl["spec"]["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert tmpl["spec"]["affinity"] == {"nodeAffinity": {}}
    c = container(dep)
    assert (c["image"], c["imagePullPolicy"]) == ("example/wsfleet:9", "Always")
    assert c["resources"] == {"limits": {"memory": "256Mi"}}


@pytest.mark.parametrize(
    ("replicas", "auto", "effective", "clamped"),
    [
        (3, {}, 3, False),
        (1, {"minReplicas": 2, "maxReplicas": 5}, 2, True),
        (9, {"minReplicas": 2, "maxReplicas": 5}, 5, True),
        (4, {"minReplicas": 2, "maxReplicas": 5}, 4, False),
        (0, {"maxReplicas": 5}, 0, False),
    ],
)
def test_autoscaling_bounds_clamp_replicas(
    replicas: int, auto: dict[str, int], effective: int, clamped: bool
) -> None:
    f = fleet(replicas=replicas, autoscaling=auto)
    assert resources.deployment(f)["spec"]["replicas"] == effective
    assert (f.clamp_message is not None) is clamped


def test_services_and_pdb() -> None:
    f = fleet(service={"type": "NodePort", "port": 8000})
    svc = resources.service(f, owner=OWNER)
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["selector"] == SELECTOR
    ws = {
        "name": "ws",
        "port": 8000,
        "targetPort": "ws",
        "protocol": "TCP",
        "appProtocol": "kubernetes.io/ws",
    }
    internal = {
        "name": "metrics",
        "port": 9100,
        "targetPort": "metrics",
        "protocol": "TCP",
        "appProtocol": "http",
    }
    assert svc["spec"]["ports"] == [ws]  # never the internal port, whatever the type
    headless = resources.headless_service(f, owner=OWNER)
    assert headless["metadata"]["name"] == "chat-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == SELECTOR
    assert headless["spec"]["ports"] == [ws, internal]
    pdb = resources.pod_disruption_budget(f, owner=OWNER)
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": {"matchLabels": SELECTOR},
    }
    custom = fleet(
        disruption={"maxUnavailable": "20%", "unhealthyPodEvictionPolicy": "IfHealthyBudget"}
    )
    pdb = resources.pod_disruption_budget(custom)
    assert (pdb["spec"]["maxUnavailable"], pdb["spec"]["unhealthyPodEvictionPolicy"]) == (
        "20%",
        "IfHealthyBudget",
    )


def test_rollout_strategy_is_configurable() -> None:
    dep = resources.deployment(fleet(rollout={"maxSurge": 1, "maxUnavailable": "10%"}))
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "10%"}


def test_workload_fields_reach_the_pod_template() -> None:
    secret_env = {
        "name": "WSFLEET_MAX_MESSAGE_SIZE",
        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
    }
    f = fleet(
        server={"settings": {"max_message_size": "1", "serialization": "json"}},
        env=[{"name": "OTEL_SERVICE_NAME", "value": "chat"}, secret_env],
        envFrom=[{"secretRef": {"name": "app-creds"}, "prefix": "APP_"}],
        volumeMounts=[{"name": "certs", "mountPath": "/certs", "readOnly": True}],
        podTemplate={
            "volumes": [{"name": "certs", "secret": {"secretName": "certs"}}],
            "imagePullSecrets": [{"name": "registry"}],
            "serviceAccountName": "chat",
            "priorityClassName": "realtime",
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
            ],
        },
    )
    tmpl = resources.pod_template(f)
    pod = tmpl["spec"]
    c = pod["containers"][0]
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names))  # a spec.env entry replaces the setting's variable
    assert c["env"][-2:] == [{"name": "OTEL_SERVICE_NAME", "value": "chat"}, secret_env]
    assert {"name": "WSFLEET_SERIALIZATION", "value": "json"} in c["env"]
    assert c["envFrom"] == [{"secretRef": {"name": "app-creds"}, "prefix": "APP_"}]
    assert c["volumeMounts"][-1] == {"name": "certs", "mountPath": "/certs", "readOnly": True}
    assert pod["volumes"][-1] == {"name": "certs", "secret": {"secretName": "certs"}}
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert (pod["serviceAccountName"], pod["priorityClassName"]) == ("chat", "realtime")
    assert pod["automountServiceAccountToken"] is False
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "zone"


@pytest.mark.parametrize(
    "key", ["server_name", "redis", "port", "internal_port", "internal_host", "config_dir"]
)
def test_settings_the_operator_fixes_are_refused(key: str) -> None:
    with pytest.raises(SpecError, match=f"spec.server.settings.{key} cannot be set"):
        fleet(server={"settings": {key: "x"}})
    assert resources.selector_string("chat") == (
        "app.kubernetes.io/name=wsfleet,app.kubernetes.io/instance=chat"
    )


def test_defaults_match_the_crd() -> None:
    f = fleet()
    assert (f.replicas, f.image, f.image_pull_policy) == (
        2,
        "ghcr.io/wsfleet/wsfleet:0.1.0",
        "IfNotPresent",
    )
    assert (f.log_format, f.drain_timeout, f.pre_stop) == ("json", 30, 5)
    assert (f.service_type, f.service_port) == ("ClusterIP", 80)
    assert f.redis_nodes == (RedisNodeSpec("redis-0.redis"),)
    assert (f.bridge_prefix, f.serialization) == ("csbp:prod.chat:", "msgpack")
    assert f.fleet_id == "prod.chat"  # <namespace>.<name>: fleets on one Redis stay apart


@pytest.mark.parametrize(
    "redis",
    [
        {},
        {"nodes": []},
        {"nodes": [{"port": 6379}]},
        {"nodes": [{"host": "a", "passwordSecretRef": {"name": "s"}}]},
    ],
)
def test_unusable_redis_lists_are_refused(redis: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        FleetSpec.parse("chat", "prod", {"redis": redis})
