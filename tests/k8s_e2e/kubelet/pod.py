"""One pod on the test kubelet: its network namespace and IP, volumes, /etc/hosts, containers,
status patches, and the end (stop every container, clean up, remove the pod object)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.k8s_e2e import netns
from tests.k8s_e2e.api import Api, ApiError, Obj
from tests.k8s_e2e.kubelet import volumes
from tests.k8s_e2e.kubelet.containers import Container, now_rfc3339
from tests.k8s_e2e.kubelet.expansion import expand
from tests.k8s_e2e.kubelet.images import lookup

log = logging.getLogger("k8s_e2e.kubelet")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_SERVICE_IP, API_SERVICE_PORT = "10.0.0.1", "443"


class Node(Protocol):
    api: Api
    name: str
    host_ip: str
    cluster_net: str
    ca_pem: bytes
    backoff: float

    def config_map(self, namespace: str, name: str) -> Obj | None: ...
    def secret(self, namespace: str, name: str) -> Obj | None: ...
    def hosts_file(self, namespace: str) -> str: ...


@dataclass
class Slot:
    """The network identity of a pod: namespace name, host-side veth, IP."""

    netns: str
    veth: str
    ip: str


class Pod:
    def __init__(self, node: Node, pod: Obj, slot: Slot, state_dir: Path) -> None:
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.slot = slot
        self.dir = state_dir / "pods" / f"{self.namespace}_{self.name}"
        self.volume_dirs: dict[str, Path] = {}
        self.containers: list[Container] = []
        self.deleting = asyncio.Event()
        self.grace = 30.0
        self._dirty = asyncio.Event()
        self._conditions: dict[str, tuple[str, str]] = {}
        self.start_time = now_rfc3339()
        self.task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    def changed(self) -> None:
        self._dirty.set()

    def delete(self, grace: float) -> None:
        self.grace = min(self.grace, grace) if self.deleting.is_set() else grace
        self.deleting.set()

    # ---- the pod's life ----------------------------------------------------------------------

    async def run(self) -> None:
        status = asyncio.create_task(self._status_writer())
        tasks: list[asyncio.Task[None]] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            netns.create_pod_network(
                self.slot.netns, self.node.cluster_net, self.slot.ip, self.slot.veth
            )
            await self._make_volumes()
            self.write_hosts()
            spec = self.pod["spec"]
            for c in spec["containers"]:
                self.containers.append(
                    Container(
                        c,
                        pod_dir=self.dir,
                        netns=self.slot.netns,
                        cluster_net=self.node.cluster_net,
                        pod_ip=self.slot.ip,
                        launch_spec=self._launch_spec,
                        restart_policy=spec.get("restartPolicy", "Always"),
                        backoff=self.node.backoff,
                        changed=self.changed,
                    )
                )
            tasks = [asyncio.create_task(c.run()) for c in self.containers]
            self.changed()
            await self.deleting.wait()
            await asyncio.gather(*(c.stop(self.grace) for c in self.containers))
        except Exception:
            log.exception("pod %s/%s failed", self.namespace, self.name)
            await self.deleting.wait()
        finally:
            for c in self.containers:
                c.stopping.set()
            for t in tasks:
                with contextlib.suppress(Exception):
                    await t
            self.changed()
            await asyncio.sleep(0.1)
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
            netns.delete(self.slot.netns)
            logs = self.dir.parent.parent / "logs"  # kept for post-mortems (WSFLEET_E2E_KEEP=1)
            logs.mkdir(exist_ok=True)
            for log_file in self.dir.glob("*.log"):
                with contextlib.suppress(OSError):
                    os.replace(log_file, logs / f"{self.namespace}_{self.name}_{log_file.name}")
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(ApiError):
                await self.node.api.request(
                    "DELETE",
                    self.path,
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                    ok404=True,
                )

    # ---- volumes -----------------------------------------------------------------------------

    async def _make_volumes(self) -> None:
        spec = self.pod["spec"]
        for volume in spec.get("volumes") or []:
            path = self.dir / "volumes" / volume["name"]
            self.volume_dirs[volume["name"]] = path
            if "emptyDir" in volume:
                volumes.empty_dir(path)
        self.refresh_volumes()
        sa = spec.get("serviceAccountName") or "default"
        if spec.get("automountServiceAccountToken", True):
            token = await self._token(sa)
            path = self.dir / "volumes" / "kube-api-access"
            volumes.write_atomic(
                path,
                {
                    "token": token.encode(),
                    "ca.crt": self.node.ca_pem,
                    "namespace": self.namespace.encode(),
                },
            )
            self.volume_dirs["kube-api-access"] = path

    async def _token(self, service_account: str) -> str:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.name,
                    "uid": self.uid,
                },
            },
        }
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{service_account}/token"
        for _ in range(100):  # the ServiceAccount may not exist yet
            try:
                got = await self.node.api.request("POST", path, body)
                assert got is not None
                return str(got["status"]["token"])
            except ApiError as exc:
                if exc.status != 404:
                    raise
                await asyncio.sleep(0.2)
        raise RuntimeError(f"no ServiceAccount {self.namespace}/{service_account}")

    def refresh_volumes(self) -> bool:
        """Rewrite the ConfigMap and Secret volumes from the cache; True if any changed."""
        changed = False
        gid = int((self.pod["spec"].get("securityContext") or {}).get("fsGroup", 0))
        for volume in self.pod["spec"].get("volumes") or []:
            path = self.volume_dirs[volume["name"]]
            if "configMap" in volume:
                src = volume["configMap"]
                files = volumes.config_map_files(
                    self.node.config_map(self.namespace, src["name"]), src.get("items")
                )
                mode = int(src.get("defaultMode", 0o644))
            elif "secret" in volume:
                src = volume["secret"]
                files = volumes.secret_files(
                    self.node.secret(self.namespace, src["secretName"]), src.get("items")
                )
                mode = int(src.get("defaultMode", 0o644))
            else:
                continue
            changed |= volumes.write_atomic(path, files, mode=mode, gid=gid)
        return changed

    def uses(self, kind: str, name: str) -> bool:
        for volume in self.pod["spec"].get("volumes") or []:
            if kind == "ConfigMap" and (volume.get("configMap") or {}).get("name") == name:
                return True
            if kind == "Secret" and (volume.get("secret") or {}).get("secretName") == name:
                return True
        return False

    def write_hosts(self) -> None:
        """/etc/hosts of the pod: itself and the Services of its namespace (the test cluster's
        stand-in for cluster DNS). Rewritten in place: the file is bind-mounted."""
        text = (
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{self.slot.ip}\t{self.name}\n"
            + self.node.hosts_file(self.namespace)
        ).encode()
        path = self.dir / "etc-hosts"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
        finally:
            os.close(fd)
        resolv = self.dir / "resolv.conf"
        if not resolv.exists():
            resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    # ---- containers --------------------------------------------------------------------------

    def _launch_spec(self, c: dict[str, Any]) -> dict[str, Any]:
        spec = self.pod["spec"]
        pod_sc = spec.get("securityContext") or {}
        sc = {**pod_sc, **(c.get("securityContext") or {})}
        uid = int(sc.get("runAsUser", 0))
        gid = int(sc.get("runAsGroup", uid))
        groups = sorted({gid, *([int(pod_sc["fsGroup"])] if "fsGroup" in pod_sc else [])})
        mounts: list[list[Any]] = []
        for m in c.get("volumeMounts") or []:
            src = self.volume_dirs[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
            mounts.append([str(src), m["mountPath"], bool(m.get("readOnly"))])
        if "kube-api-access" in self.volume_dirs:
            mounts.append([str(self.volume_dirs["kube-api-access"]), SA_DIR, True])
        mounts.append([str(self.dir / "etc-hosts"), "/etc/hosts", True])
        mounts.append([str(self.dir / "resolv.conf"), "/etc/resolv.conf", True])
        image = lookup(c["image"])
        # The image's own files last: a volume on a parent directory must not hide them.
        mounts.extend([path, path, True] for path in image.files)
        env = {
            "PATH": image.path,
            "HOSTNAME": self.name,
            "HOME": "/root" if uid == 0 else "/",
            "KUBERNETES_SERVICE_HOST": API_SERVICE_IP,
            "KUBERNETES_SERVICE_PORT": API_SERVICE_PORT,
        }
        if image.pythonpath:
            env["PYTHONPATH"] = image.pythonpath
        defined = {k: v for k, v in env.items() if k.startswith("KUBERNETES_SERVICE_")}
        for var in c.get("env") or []:
            value = self._env_value(var)
            if "value" in var:  # not valueFrom: a Secret's text stays as it is
                value = expand(value, defined)
            defined[var["name"]] = env[var["name"]] = value
        return {
            "netns": self.slot.netns,
            "env": env,
            "cwd": c.get("workingDir") or "/",
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "scratch": str(self.dir / f"{c['name']}.rootfs"),
            "mounts": mounts,
        }

    def _env_value(self, var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            field = source["fieldRef"]["fieldPath"]
            meta, spec = self.pod["metadata"], self.pod["spec"]
            values = {
                "metadata.name": self.name,
                "metadata.namespace": self.namespace,
                "metadata.uid": self.uid,
                "spec.nodeName": spec.get("nodeName", ""),
                "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                "status.podIP": self.slot.ip,
                "status.hostIP": self.node.host_ip,
            }
            if field.startswith("metadata.labels['"):
                return str((meta.get("labels") or {}).get(field[17:-2], ""))
            if field.startswith("metadata.annotations['"):
                return str((meta.get("annotations") or {}).get(field[22:-2], ""))
            return values.get(field, "")
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            return str(
                ((self.node.config_map(self.namespace, ref["name"]) or {}).get("data") or {}).get(
                    ref["key"], ""
                )
            )
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            files = volumes.secret_files(self.node.secret(self.namespace, ref["name"]), None)
            return files.get(ref["key"], b"").decode()
        return ""

    # ---- status ------------------------------------------------------------------------------

    def _condition(self, kind: str, ok: bool) -> dict[str, str]:
        status = "True" if ok else "False"
        previous = self._conditions.get(kind)
        if previous is None or previous[0] != status:
            self._conditions[kind] = (status, now_rfc3339())
        return {"type": kind, "status": status, "lastTransitionTime": self._conditions[kind][1]}

    def status(self) -> dict[str, Any]:
        statuses = [c.status() for c in self.containers]
        ready = bool(statuses) and all(s["ready"] for s in statuses)
        running = any("running" in s["state"] for s in statuses)
        return {
            "phase": "Running" if running or self.containers else "Pending",
            "hostIP": self.node.host_ip,
            "hostIPs": [{"ip": self.node.host_ip}],
            "podIP": self.slot.ip,
            "podIPs": [{"ip": self.slot.ip}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", True),
                self._condition("ContainersReady", ready),
                self._condition("Ready", ready),
            ],
            "containerStatuses": statuses,
        }

    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # one patch for a burst of changes
            self._dirty.clear()
            try:
                await self.node.api.request(
                    "PATCH",
                    self.path + "/status",
                    {"status": self.status()},
                    content_type="application/strategic-merge-patch+json",
                    ok404=True,
                )
            except Exception as exc:
                log.warning("status of %s/%s: %s", self.namespace, self.name, exc)
                await asyncio.sleep(0.5)
                self._dirty.set()
