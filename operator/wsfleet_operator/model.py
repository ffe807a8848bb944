"""The WsFleet spec as typed values, with the CRD's defaults repeated.

The API server applies the CRD defaults, but objects written before a default existed, or test
bodies, may lack them, so every reader goes through :func:`FleetSpec.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from wsfleet import contract

from . import constants as c

DEFAULT_IMAGE = "ghcr.io/wsfleet/wsfleet:0.1.0"

#: Settings the operator fixes itself (the CRD refuses them too), with the reason.
FIXED_SETTINGS = {
    "server_name": "every pod is named after itself (POD_NAME)",
    "redis": "the Redis nodes are listed in spec.redis.nodes",
    "port": "the operator fixes the client port",
    "internal_port": "the operator fixes the internal port",
    "internal_host": "the operator binds the internal port to the pod IP and loopback",
    "config_dir": "the operator mounts the Redis node list",
    "recovery": "use spec.server.recovery (on by default)",
}

IntOrStr = int | str


class SpecError(ValueError):
    """The spec cannot be turned into objects (the CRD schema should have refused it)."""


@dataclass(frozen=True)
class RedisNodeSpec:
    host: str
    port: int = 6379
    db: int = 0
    tls: bool = False
    secret_name: str | None = None
    secret_key: str | None = None
    mode: str = "node"
    """``node``, ``cluster`` (a Redis Cluster reached through host:port and ``seeds``) or
    ``sentinel`` (the master ``master_name`` of the Sentinels at host:port and ``seeds``)."""
    seeds: tuple[str, ...] = ()
    master_name: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> RedisNodeSpec:
        host = raw.get("host")
        if not isinstance(host, str) or not host:
            raise SpecError("spec.redis.nodes[].host is required")
        ref = raw.get("passwordSecretRef") or {}
        name, key = ref.get("name"), ref.get("key")
        if bool(name) != bool(key):
            raise SpecError("passwordSecretRef needs both name and key")
        mode = str(raw.get("mode") or "node")
        if mode not in ("node", "cluster", "sentinel"):
            raise SpecError("spec.redis.nodes[].mode is node, cluster or sentinel")
        master = raw.get("masterName")
        if (mode == "sentinel") != bool(master):
            raise SpecError("spec.redis.nodes[].masterName is required with mode sentinel only")
        return cls(
            host=host,
            port=int(raw.get("port", 6379)),
            db=int(raw.get("db", 0)),
            tls=bool(raw.get("tls", False)),
            secret_name=str(name) if name else None,
            secret_key=str(key) if key else None,
            mode=mode,
            seeds=tuple(str(s) for s in raw.get("seeds") or ()),
            master_name=str(master) if master else None,
        )

    @property
    def key(self) -> str:
        """``host:port/db`` (or ``cluster://…`` / ``sentinel://…/<master>``): how the node names
        this Redis node in metrics and its registry."""
        if self.mode != "node":
            tail = f"/{self.master_name}" if self.master_name else ""
            return f"{self.mode}://" + ",".join([f"{self.host}:{self.port}", *self.seeds]) + tail
        return f"{self.host}:{self.port}/{self.db}"

    @property
    def password_file(self) -> str | None:
        if self.secret_name is None or self.secret_key is None:
            return None
        return f"{c.SECRETS_DIR}/{self.secret_name}/{self.secret_key}"

    @property
    def address(self) -> str:
        """The line of the ConfigMap: ``redis[s]://host:port/db[?password_file=...]``."""
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.mode == "node":
            url = f"{scheme}://{host}:{self.port}/{self.db}"
        else:  # redis+cluster:// or redis+sentinel:// (wsfleet.bus.topology_nodes)
            path = f"/{quote(self.master_name, safe='')}" if self.master_name else ""
            url = f"{scheme}+{self.mode}://{host}:{self.port}{path}"
        query = [f"seed={quote(s, safe=':')}" for s in self.seeds]
        if self.password_file is not None:
            query.append("password_file=" + quote(self.password_file, safe="/"))
        return url + ("?" + "&".join(query) if query else "")


@dataclass(frozen=True)
class SecretKeyRef:
    """``{name, key}`` of a Secret in the fleet's namespace."""

    name: str
    key: str

    @classmethod
    def parse(cls, raw: Any, where: str) -> SecretKeyRef | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where} must be an object {{name, key}}")
        name, key = raw.get("name"), raw.get("key", BUS_KEY_DEFAULT_KEY)
        if not isinstance(name, str) or not name or not isinstance(key, str) or not key:
            raise SpecError(f"{where} needs a Secret name and key")
        return cls(name, key)


#: The key of the bus-key Secret when ``spec.busKeySecretRef.key`` is not given.
BUS_KEY_DEFAULT_KEY = "keys"


@dataclass(frozen=True)
class FleetSpec:
    name: str
    namespace: str
    replicas: int = 2
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    redis_nodes: tuple[RedisNodeSpec, ...] = ()
    app: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    log_format: str = "json"
    recovery: bool = True
    drain_timeout: int = 30
    pre_stop: int = 5
    resources: Mapping[str, Any] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    min_replicas: int | None = None
    max_replicas: int | None = None
    service_type: str = "ClusterIP"
    service_port: int = 80
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    image_pull_secrets: tuple[Mapping[str, Any], ...] = ()
    service_account_name: str | None = None
    priority_class_name: str | None = None
    topology_spread_constraints: tuple[Mapping[str, Any], ...] = ()
    max_surge: IntOrStr = "100%"
    max_unavailable: IntOrStr = 0
    pdb_max_unavailable: IntOrStr = 1
    unhealthy_pod_eviction_policy: str = "AlwaysAllow"
    bus_key: SecretKeyRef | None = None

    @classmethod
    def parse(cls, name: str, namespace: str, spec: Mapping[str, Any]) -> FleetSpec:
        redis = spec.get("redis") or {}
        nodes = tuple(RedisNodeSpec.parse(n) for n in redis.get("nodes") or ())
        if not nodes:
            raise SpecError("spec.redis.nodes needs at least one node")
        server = spec.get("server") or {}
        drain = spec.get("drain") or {}
        pod = spec.get("podTemplate") or {}
        auto = spec.get("autoscaling") or {}
        service = spec.get("service") or {}
        settings = {str(k): str(v) for k, v in (server.get("settings") or {}).items()}
        for key, why in FIXED_SETTINGS.items():
            if key in settings:
                raise SpecError(f"spec.server.settings.{key} cannot be set: {why}")
        bus_key = SecretKeyRef.parse(spec.get("busKeySecretRef"), "spec.busKeySecretRef")
        if bus_key is not None and "bus_key_file" in settings:
            raise SpecError(
                "spec.server.settings.bus_key_file cannot be set with spec.busKeySecretRef: "
                "the operator mounts the bus-key Secret and points bus_key_file at it"
            )
        rollout = spec.get("rollout") or {}
        disruption = spec.get("disruption") or {}
        return cls(
            name=name,
            namespace=namespace,
            replicas=int(spec.get("replicas", 2)),
            image=str(spec.get("image") or DEFAULT_IMAGE),
            image_pull_policy=str(spec.get("imagePullPolicy") or "IfNotPresent"),
            redis_nodes=nodes,
            app=server.get("app") or None,
            settings=settings,
            log_format=str(server.get("logFormat") or "json"),
            recovery=_flag(server.get("recovery", True), "spec.server.recovery"),
            drain_timeout=int(drain.get("timeoutSeconds", 30)),
            pre_stop=int(drain.get("preStopSeconds", 5)),
            resources=dict(spec.get("resources") or {}),
            pod_labels=dict(pod.get("labels") or {}),
            pod_annotations=dict(pod.get("annotations") or {}),
            node_selector=dict(pod.get("nodeSelector") or {}),
            tolerations=_items(pod.get("tolerations")),
            affinity=dict(pod.get("affinity") or {}),
            min_replicas=_opt_int(auto.get("minReplicas")),
            max_replicas=_opt_int(auto.get("maxReplicas")),
            service_type=str(service.get("type") or "ClusterIP"),
            service_port=int(service.get("port", 80)),
            env=_items(spec.get("env")),
            env_from=_items(spec.get("envFrom")),
            volume_mounts=_items(spec.get("volumeMounts")),
            volumes=_items(pod.get("volumes")),
            image_pull_secrets=_items(pod.get("imagePullSecrets")),
            service_account_name=pod.get("serviceAccountName") or None,
            priority_class_name=pod.get("priorityClassName") or None,
            topology_spread_constraints=_items(pod.get("topologySpreadConstraints")),
            max_surge=_int_or_str(rollout.get("maxSurge", "100%")),
            max_unavailable=_int_or_str(rollout.get("maxUnavailable", 0)),
            pdb_max_unavailable=_int_or_str(disruption.get("maxUnavailable", 1)),
            unhealthy_pod_eviction_policy=str(
                disruption.get("unhealthyPodEvictionPolicy") or "AlwaysAllow"
            ),
            bus_key=bus_key,
        )

    @property
    def effective_replicas(self) -> int:
        """``spec.replicas`` clamped into ``spec.autoscaling`` bounds when those are given."""
        n = self.replicas
        if self.min_replicas is not None:
            n = max(n, self.min_replicas)
        if self.max_replicas is not None:
            n = min(n, self.max_replicas)
        return n

    @property
    def clamp_message(self) -> str | None:
        n = self.effective_replicas
        if n == self.replicas:
            return None
        bound = "minReplicas" if n > self.replicas else "maxReplicas"
        return f"spec.replicas {self.replicas} is outside spec.autoscaling; running {n} ({bound})"

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.redis_nodes]

    @property
    def fleet_id(self) -> str:
        """The fleet's identity on Redis (``<namespace>.<name>``, or ``server.settings.fleet``):
        two WsFleets on one Redis never share a channel or a key."""
        return self.settings.get("fleet", f"{self.namespace}.{self.name}")

    @property
    def bridge_prefix(self) -> str:
        """The bridge prefix in effect on the bus (inside the fleet's space)."""
        base = self.settings.get("bridge_prefix", c.DEFAULT_BRIDGE_PREFIX)
        return contract.fleet_prefix(base, self.fleet_id)

    @property
    def serialization(self) -> str:
        return self.settings.get("serialization", "msgpack").lower()

    @property
    def secret_names(self) -> list[str]:
        return sorted({n.secret_name for n in self.redis_nodes if n.secret_name})

    @property
    def recovery_on(self) -> bool:
        """``spec.server.recovery`` (every mode runs it: Redis nodes, Sentinel, Redis Cluster)."""
        return self.recovery

    @property
    def bus_key_file(self) -> str | None:
        """Where the pods read the bus keys (the Secret mounted as a directory, so kubelet
        refreshes the file in running pods and the node re-reads it: rotation without restarts)."""
        if self.bus_key is None:
            return None
        return f"{c.BUS_KEY_DIR}/{self.bus_key.key}"

    @property
    def termination_grace(self) -> int:
        return self.pre_stop + self.drain_timeout + 10


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _items(value: Any) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise SpecError(f"expected a list of objects, got {value!r:.80}")
    return tuple(dict(v) for v in value)


def _int_or_str(value: Any) -> IntOrStr:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(f"expected a number or a percentage, got {value!r:.80}")
    return value


def _flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SpecError(f"{where} must be true or false, got {value!r}")
