"""A real Prometheus for the end-to-end test, configured from the chart's ServiceMonitor the way the
Prometheus Operator would (no CRD for it exists in the test cluster, so the ServiceMonitor is
rendered with ``helm template`` and translated here).

The translation keeps what decides which pods are scraped and how they are labelled: discovery of
the EndpointSlices in the ServiceMonitor's namespaces, ``keep`` rules for each of its
``selector.matchLabels``, the endpoint's port name, the operator's standard target labels
(``namespace``, ``service``, ``pod``, ``job`` = the Service's name, ``endpoint``), then the
ServiceMonitor's own relabelings. Debian's Prometheus is built without Kubernetes service
discovery, so :func:`discover` lists the EndpointSlices and writes every endpoint with the same
``__meta_kubernetes_*`` labels ``kubernetes_sd_configs`` (role ``endpointslice``) would give it
into a ``file_sd`` file; the selection and relabeling are Prometheus's own. Prometheus runs inside
the cluster network namespace, where it reaches the pod IPs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.k8s_e2e.cluster import Cluster
from tests.k8s_e2e.helpers import pod_http
from tests.k8s_e2e.netns import GATEWAY

PROMETHEUS = shutil.which("prometheus")
PORT = 9090


def _label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discover(cluster: Cluster, namespaces: list[str]) -> list[dict[str, Any]]:
    """file_sd target groups: every endpoint port of every EndpointSlice in ``namespaces``."""
    groups = []
    for ns in namespaces:
        services = {
            s["metadata"]["name"]: s
            for s in cluster.plane.request("GET", f"/api/v1/namespaces/{ns}/services").json()[
                "items"
            ]
        }
        slices = cluster.plane.request(
            "GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        ).json()["items"]
        for es in slices:
            name = (es["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
            if name not in services:
                continue
            svc_labels = services[name]["metadata"].get("labels") or {}
            base = {
                "__meta_kubernetes_namespace": ns,
                "__meta_kubernetes_service_name": name,
                "__meta_kubernetes_endpointslice_name": es["metadata"]["name"],
            }
            for key, value in svc_labels.items():
                base[f"__meta_kubernetes_service_label_{_label(key)}"] = value
                base[f"__meta_kubernetes_service_labelpresent_{_label(key)}"] = "true"
            for port in es.get("ports") or []:
                for ep in es.get("endpoints") or []:
                    ref = ep.get("targetRef") or {}
                    labels = {
                        **base,
                        "__meta_kubernetes_endpointslice_port_name": port.get("name") or "",
                        "__meta_kubernetes_pod_name": ref.get("name", "")
                        if ref.get("kind") == "Pod"
                        else "",
                    }
                    for address in ep.get("addresses") or []:
                        groups.append({"targets": [f"{address}:{port['port']}"], "labels": labels})
    return groups


def scrape_config(service_monitor: dict[str, Any], sd_file: Path) -> dict[str, Any]:
    spec = service_monitor["spec"]
    meta = service_monitor["metadata"]
    (endpoint,) = spec["endpoints"]
    relabel: list[dict[str, Any]] = []
    for key, value in sorted(spec["selector"].get("matchLabels", {}).items()):
        relabel.append(
            {
                "source_labels": [
                    f"__meta_kubernetes_service_label_{_label(key)}",
                    f"__meta_kubernetes_service_labelpresent_{_label(key)}",
                ],
                "regex": f"({re.escape(value)});true",
                "action": "keep",
            }
        )
    relabel += [
        {
            "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
            "regex": endpoint["port"],
            "action": "keep",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    for r in endpoint.get("relabelings", []):
        rule = {
            "source_labels": r.get("sourceLabels"),
            "target_label": r.get("targetLabel"),
            "regex": r.get("regex"),
            "action": r.get("action"),
            "replacement": r.get("replacement"),
        }
        relabel.append({k: v for k, v in rule.items() if v is not None})
    return {
        "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/0",
        # the ServiceMonitor's interval (30s) made short so the test does not wait for scrapes
        "scrape_interval": "1s",
        "metrics_path": endpoint.get("path", "/metrics"),
        "scheme": endpoint.get("scheme", "http"),
        "file_sd_configs": [{"files": [str(sd_file)]}],
        "relabel_configs": relabel,
    }


class Prometheus:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def query(self, expr: str) -> list[dict[str, Any]]:
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = await pod_http(self.cluster, GATEWAY, PORT, path)
        assert status == 200 and body["status"] == "success", body
        return list(body["data"]["result"])


@contextlib.asynccontextmanager
async def prometheus(
    cluster: Cluster, service_monitor: dict[str, Any]
) -> AsyncIterator[Prometheus]:
    assert PROMETHEUS is not None, "prometheus is not installed: run `make system-deps`"
    workdir = cluster.workdir / "prometheus"
    workdir.mkdir()
    config = workdir / "prometheus.yml"
    sd_file = workdir / "targets.json"
    sd_file.write_text(
        json.dumps(discover(cluster, service_monitor["spec"]["namespaceSelector"]["matchNames"]))
    )
    job = scrape_config(service_monitor, sd_file)
    config.write_text(
        json.dumps({"global": {"evaluation_interval": "1s"}, "scrape_configs": [job]})
    )
    log = (workdir / "prometheus.log").open("ab")
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", cluster.cluster_net, PROMETHEUS,
            f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={GATEWAY}:{PORT}", "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    finally:
        log.close()
    prom = Prometheus(cluster)
    try:
        async with asyncio.timeout(30):
            while True:
                if proc.returncode is not None:
                    raise AssertionError(
                        f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                    )
                with contextlib.suppress(OSError, AssertionError, ValueError, IndexError):
                    status, _ = await pod_http(cluster, GATEWAY, PORT, "/-/ready")
                    if status == 200:
                        break
                await asyncio.sleep(0.2)
        yield prom
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
