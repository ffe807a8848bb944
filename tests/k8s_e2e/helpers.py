"""Helpers of the end-to-end tests: polling, API reads, kubectl/helm, HTTP to a pod."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.k8s_e2e.cluster import Cluster
from tests.k8s_e2e.kubelet.probes import connect

NS = "realtime"
RELEASE = "demo"
FLEET = "demo-wsfleet"
SELECTOR = f"app.kubernetes.io/name=wsfleet,app.kubernetes.io/instance={FLEET}"


async def until(check: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            last = result
        except Exception as exc:  # not there yet
            last = exc
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")
        await asyncio.sleep(0.25)


def get(cluster: Cluster, path: str) -> Any:
    resp = cluster.plane.request("GET", path)
    if resp.status == 404:
        return None
    assert resp.status == 200, f"GET {path}: {resp.status} {resp.body[:300]!r}"
    return resp.json()


def fleet_pods(cluster: Cluster) -> list[dict[str, Any]]:
    items = get(cluster, f"/api/v1/namespaces/{NS}/pods?labelSelector={SELECTOR}")["items"]
    return sorted(items, key=lambda p: p["metadata"]["name"])


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def serving_pods(cluster: Cluster) -> list[dict[str, Any]]:
    """Fleet pods that are ready and not terminating."""
    return [
        p for p in fleet_pods(cluster) if is_ready(p) and not p["metadata"].get("deletionTimestamp")
    ]


async def run(cluster: Cluster, tool: str, *args: str, timeout: float = 60) -> str:
    return await asyncio.to_thread(cluster.run, tool, *args, timeout=timeout)


async def fleet_ready(cluster: Cluster, replicas: int, timeout: float = 90) -> list[dict[str, Any]]:
    """``kubectl get wsfleet`` says READY = replicas and only that many pods exist, all ready."""

    async def check() -> Any:
        row = (
            await run(cluster, "kubectl", "-n", NS, "get", "wsfleet", FLEET, "--no-headers")
        ).split()
        pods = fleet_pods(cluster)
        return (
            row[1:3] == [str(replicas), str(replicas)]
            and len(pods) == replicas
            and all(is_ready(p) for p in pods)
            and pods
        )

    return list(await until(check, f"the fleet ready with {replicas} pods", timeout))


async def pod_http(cluster: Cluster, ip: str, port: int, path: str) -> tuple[int, Any]:
    """GET http://<pod ip>:<port><path> from the cluster network; (status, parsed JSON body)."""
    reader, writer = await connect(cluster.cluster_net, ip, port, 5.0)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        body = _unchunk(body)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


async def cluster_view(cluster: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    status, view = await pod_http(cluster, pod["status"]["podIP"], 9100, "/cluster")
    assert status == 200, view
    return dict(view)


def ingress_upstreams(cluster: Cluster) -> int:
    conf = cluster.workdir / "network" / "ingress" / "nginx.conf"
    return conf.read_text().count("max_fails=0;") if conf.exists() else 0
