"""The test kubelet: registers a Node (with its Lease), runs the pods bound to it as processes
(:mod:`.pod`), and keeps their ConfigMap/Secret volumes and /etc/hosts current."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import platform
from pathlib import Path

from tests.k8s_e2e.api import Api, ApiError, Informer, Obj
from tests.k8s_e2e.kubelet.containers import now_rfc3339
from tests.k8s_e2e.kubelet.pod import Pod, Slot

log = logging.getLogger("k8s_e2e.kubelet")
LEASE_SECONDS = 40
RENEW_SECONDS = 5.0


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Kubelet:
    def __init__(
        self,
        api: Api,
        *,
        name: str,
        index: int,
        cluster_net: str,
        prefix: str,
        state_dir: Path,
        ca_pem: bytes,
        backoff: float,
    ) -> None:
        self.api = api
        self.name = name
        self.index = index
        self.cluster_net = cluster_net
        self.prefix = prefix
        self.state_dir = state_dir
        self.ca_pem = ca_pem
        self.backoff = backoff
        self.host_ip = f"10.244.{index}.1"
        self.pods: dict[str, Pod] = {}
        self._free = list(range(2, 250))
        self._slot_of: dict[str, int] = {}
        self.pod_informer = Informer(
            api, "/api/v1/pods", self._on_pod, params={"fieldSelector": f"spec.nodeName={name}"}
        )
        self.config_maps = Informer(api, "/api/v1/configmaps", self._on_config_map)
        self.secrets = Informer(api, "/api/v1/secrets", self._on_secret)
        self.services = Informer(api, "/api/v1/services", self._on_service)

    # ---- what pods read ----------------------------------------------------------------------

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return self.config_maps.items.get(f"{namespace}/{name}")

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.items.get(f"{namespace}/{name}")

    def hosts_file(self, namespace: str) -> str:
        lines = []
        for svc in self.services.items.values():
            meta, ip = svc["metadata"], svc["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            name, ns = meta["name"], meta["namespace"]
            names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
            if ns == namespace:
                names.insert(0, name)
            lines.append(f"{ip}\t{' '.join(names)}\n")
        return "".join(sorted(lines))

    # ---- node --------------------------------------------------------------------------------

    def _node(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "wsfleet.io/test-kubelet": "true",
                },
            },
            "spec": {"podCIDR": f"10.244.{self.index}.0/24"},
        }

    def _node_status(self) -> Obj:
        heartbeat = now_rfc3339()
        capacity = {"cpu": "32", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        conditions = [
            ("Ready", "True", "KubeletReady", "test kubelet is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
            ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
        ]
        return {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "addresses": [
                    {"type": "InternalIP", "address": self.host_ip},
                    {"type": "Hostname", "address": self.name},
                ],
                "conditions": [
                    {
                        "type": t,
                        "status": s,
                        "reason": r,
                        "message": m,
                        "lastHeartbeatTime": heartbeat,
                        "lastTransitionTime": heartbeat,
                    }
                    for t, s, r, m in conditions
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {
                    "machineID": self.name,
                    "systemUUID": self.name,
                    "bootID": self.prefix,
                    "kernelVersion": platform.release(),
                    "osImage": "test kubelet",
                    "containerRuntimeVersion": "test-kubelet://processes",
                    "kubeletVersion": "v1.37.2",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    async def register(self) -> None:
        with contextlib.suppress(ApiError):
            await self.api.request("POST", "/api/v1/nodes", self._node())
        await self.api.request(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            self._node_status(),
            content_type="application/strategic-merge-patch+json",
        )

    async def _heartbeat(self) -> None:
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        beats = 0
        while True:
            spec = {
                "holderIdentity": self.name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now(),
            }
            try:
                if await self.api.merge_patch(lease_path, {"spec": spec}) is None:
                    await self.api.request(
                        "POST",
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        {
                            "apiVersion": "coordination.k8s.io/v1",
                            "kind": "Lease",
                            "metadata": {"name": self.name},
                            "spec": spec,
                        },
                    )
                beats += 1
                if beats % 6 == 0:
                    await self.api.request(
                        "PATCH",
                        f"/api/v1/nodes/{self.name}/status",
                        self._node_status(),
                        content_type="application/strategic-merge-patch+json",
                    )
            except Exception as exc:
                log.warning("heartbeat: %s", exc)
            await asyncio.sleep(RENEW_SECONDS)

    # ---- events ------------------------------------------------------------------------------

    async def _on_pod(self, kind: str, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        pod = self.pods.get(uid)
        if kind == "DELETED":
            if pod is not None:
                pod.delete(0)
            return
        meta = obj["metadata"]
        if pod is None:
            if meta.get("deletionTimestamp") or obj.get("status", {}).get("phase") in (
                "Succeeded",
                "Failed",
            ):
                if meta.get("deletionTimestamp"):  # never started here: just remove it
                    with contextlib.suppress(ApiError):
                        await self.api.request(
                            "DELETE",
                            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                            {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                            ok404=True,
                        )
                return
            slot_index = self._free.pop(0)
            self._slot_of[uid] = slot_index
            slot = Slot(
                netns=f"{self.prefix}-n{self.index}p{slot_index}",
                veth=f"v{self.index}p{slot_index}",
                ip=f"10.244.{self.index}.{slot_index}",
            )
            pod = self.pods[uid] = Pod(self, obj, slot, self.state_dir)
            pod.task = asyncio.create_task(self._run_pod(pod))
            log.info("pod %s/%s: starting with IP %s", meta["namespace"], meta["name"], slot.ip)
            return
        pod.pod = obj
        if meta.get("deletionTimestamp"):
            pod.delete(float(meta.get("deletionGracePeriodSeconds", 30)))

    async def _run_pod(self, pod: Pod) -> None:
        try:
            await pod.run()
        finally:
            self.pods.pop(pod.uid, None)
            self._free.append(self._slot_of.pop(pod.uid))
            log.info("pod %s/%s: gone", pod.namespace, pod.name)

    async def _on_config_map(self, kind: str, obj: Obj) -> None:
        self._refresh("ConfigMap", obj)

    async def _on_secret(self, kind: str, obj: Obj) -> None:
        self._refresh("Secret", obj)

    def _refresh(self, what: str, obj: Obj) -> None:
        meta = obj["metadata"]
        for pod in list(self.pods.values()):
            if (
                pod.namespace == meta["namespace"]
                and pod.uses(what, meta["name"])
                and pod.volume_dirs
                and pod.refresh_volumes()
            ):
                log.info(
                    "pod %s/%s: %s %s updated in its volume",
                    pod.namespace,
                    pod.name,
                    what,
                    meta["name"],
                )

    async def _on_service(self, kind: str, obj: Obj) -> None:
        for pod in list(self.pods.values()):
            if pod.dir.is_dir():
                pod.write_hosts()

    # ---- run ---------------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        informers = [self.config_maps, self.secrets, self.services]
        tasks = [asyncio.create_task(i.run()) for i in informers]
        try:
            for i in informers:
                await i.synced.wait()
            await self.register()
            tasks.append(asyncio.create_task(self._heartbeat()))
            tasks.append(asyncio.create_task(self.pod_informer.run()))
            await self.pod_informer.synced.wait()
            if ready is not None:
                ready.set()
            await asyncio.Future()
        finally:
            for t in tasks:
                t.cancel()
            await self.shutdown()

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop every pod (the test cluster is going away)."""
        for pod in list(self.pods.values()):
            pod.delete(grace)
        pending = [p.task for p in self.pods.values() if p.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=grace + 10)
