"""The whole story on a test Kubernetes cluster: ``helm install`` the chart with a fleet and a dev
Redis; the operator runs as a pod under the chart's RBAC; real ``wsfleet serve`` processes run as
pods on two test kubelets; clients connect through nginx (the ingress) and talk across pods; the
fleet is scaled, hot-plugged, rolled, crashed, evicted and uninstalled.

The tests run in file order on one installed release (module-scoped cluster); each leaves the
fleet serving for the next. See docs/kubernetes.md, "How it is tested end to end".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml

from tests.k8s_e2e.clients import HOST, Client, chatter, missing
from tests.k8s_e2e.cluster import REPO, Cluster
from tests.k8s_e2e.helpers import (
    FLEET,
    NS,
    RELEASE,
    cluster_view,
    fleet_pods,
    fleet_ready,
    get,
    ingress_upstreams,
    is_ready,
    pod_http,
    run,
    serving_pods,
    until,
)
from tests.k8s_e2e.monitoring import Prometheus, prometheus

pytestmark = [pytest.mark.k8s_e2e, pytest.mark.timeout(240)]
CHART = "helm/wsfleet"
VALUES = [
    "--set",
    "fleet.enabled=true",
    "--set",
    "fleet.server.app=tests.k8s_e2e.app:setup",
    "--set",
    "devRedis.enabled=true",
    "--set",
    "ingress.enabled=true",
    "--set",
    "fleet.drain.preStopSeconds=1",
    "--set",
    "fleet.drain.timeoutSeconds=5",
    "--set-json",
    'operator.env=[{"name":"WSFLEET_OPERATOR_STATUS_INTERVAL","value":"2"}]',
]


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> str:
    cluster.run("helm", "install", RELEASE, CHART, "-n", NS, "--create-namespace", *VALUES)
    return RELEASE


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def url(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.lb_port}/ws"


async def connected(
    cluster: Cluster, session: aiohttp.ClientSession, names: list[str]
) -> list[Client]:
    clients = [Client(session, url(cluster), name) for name in names]
    for c in clients:  # one by one: nginx's round robin spreads them over the pods
        await c.connect()
    return clients


async def spread(
    cluster: Cluster, session: aiohttp.ClientSession, prefix: str, pods: int
) -> list[Client]:
    """Connect clients through the ingress until every one of ``pods`` pods has two (nginx may
    still be reloading with the new endpoints when the first ones connect)."""
    await until(lambda: ingress_upstreams(cluster) == pods, f"the ingress sends to {pods} pods", 30)
    clients: list[Client] = []
    while len(clients) < 8 * pods:
        clients += await connected(cluster, session, [f"{prefix}{len(clients)}"])
        counts = await connections_per_pod(cluster)
        if len(counts) == pods and all(n >= 2 for n in counts.values()):
            return clients
    raise AssertionError(
        f"{len(clients)} clients through the ingress did not reach all {pods} pods: {counts}"
    )


async def connections_per_pod(cluster: Cluster) -> dict[str, int]:
    return {
        p["metadata"]["name"]: (await cluster_view(cluster, p))["connections"]
        for p in serving_pods(cluster)
    }


async def test_helm_install_runs_the_operator_as_a_pod_and_the_fleet_becomes_ready(
    cluster: Cluster, release: str, session: aiohttp.ClientSession
) -> None:
    pods = await fleet_ready(cluster, 2)

    async def table() -> bool:
        row = await run(cluster, "kubectl", "-n", NS, "get", "wsfleet", "--no-headers")
        return row.split()[:5] == [FLEET, "2", "2", "2", "True"]  # replicas, ready, nodes, ready

    await until(table, "`kubectl get wsfleet`: 2 replicas, 2 ready, 2 fleet nodes, Ready", 30)

    # the operator is a pod of the chart's Deployment, with the chart's ServiceAccount and no
    # other credentials; what it applied carries its field manager
    (operator,) = get(
        cluster, f"/api/v1/namespaces/{NS}/pods?labelSelector=app.kubernetes.io/component=operator"
    )["items"]
    assert operator["spec"]["serviceAccountName"] == f"{FLEET}-operator"
    env = {e["name"] for e in operator["spec"]["containers"][0].get("env", [])}
    assert "KUBECONFIG" not in env
    deployment = get(cluster, f"/apis/apps/v1/namespaces/{NS}/deployments/{FLEET}")
    assert "wsfleet-operator" in {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "WsFleet"

    # Kubernetes' own controllers made the pods; the scheduler spread them over both nodes,
    # each with its own IP, and the chart's user
    assert {p["spec"]["nodeName"] for p in pods} == set(cluster.node_names)
    assert len({p["status"]["podIP"] for p in pods}) == 2
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)

    # clients through the ingress land on both pods and talk across them
    clients = await spread(cluster, session, "c", pods=2)
    try:
        assert await clients[0].say(1)
        await until(
            lambda: all(1 in c.heard.get("c0", ()) for c in clients), "c0's message everywhere", 10
        )
        assert (await clients[1].call("broadcast", {"hello": "all"})) == {"ok": True}
        await until(
            lambda: all(c.announcements == [{"hello": "all"}] for c in clients), "the broadcast", 10
        )
        # direct messages from one client to each other one, on its pod or the other
        for c in clients[1:]:
            assert await clients[0].call("dm", {"to": c.name, "text": f"psst {c.name}"}) == {
                "ok": True
            }
        await until(
            lambda: all(
                c.directs == [{"from": "c0", "text": f"psst {c.name}"}] for c in clients[1:]
            ),
            "a direct message to every client, across pods",
            10,
        )
    finally:
        for c in clients:
            await c.close()


async def test_scale_to_4_then_2_moves_clients_with_1012_and_loses_no_acked_message(
    cluster: Cluster, release: str, session: aiohttp.ClientSession
) -> None:
    await run(cluster, "kubectl", "-n", NS, "scale", "wsfleet", FLEET, "--replicas=4")
    await fleet_ready(cluster, 4)
    clients = await spread(cluster, session, "s", pods=4)
    try:
        stop = asyncio.Event()
        talk = asyncio.create_task(chatter(clients, stop))
        await until(lambda: all(len(c.acked) >= 3 for c in clients), "everyone talking", 20)

        await run(cluster, "kubectl", "-n", NS, "scale", "wsfleet", FLEET, "--replicas=2")
        await fleet_ready(cluster, 2)
        moved = [c for c in clients if not c.continuous]
        assert moved, "no client was on a removed pod"
        for c in moved:
            await c.wait_online()
        await until(
            lambda: all(len(c.acked) >= 3 for c in moved) and _acked_after_move(moved),
            "moved clients talking again",
            20,
        )
        stop.set()
        await talk

        assert all(code == 1012 for c in clients for code in c.close_codes), [
            c.close_codes for c in clients
        ]
        observers = [c for c in clients if c.continuous]
        assert observers, "every client was moved"
        await until(
            lambda: not missing(observers, clients),
            "every acked message heard by every client that stayed",
            10,
        )
    finally:
        for c in clients:
            await c.close()


def _acked_after_move(moved: list[Client]) -> bool:
    return all(c.reconnects >= 1 for c in moved)


async def test_a_redis_node_is_hot_plugged_by_editing_the_resource_without_pod_restarts(
    cluster: Cluster, release: str, session: aiohttp.ClientSession
) -> None:
    extra = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "extra-redis"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "extra-redis"}},
                    "template": {
                        "metadata": {"labels": {"app": "extra-redis"}},
                        "spec": {
                            "automountServiceAccountToken": False,
                            "securityContext": {"runAsUser": 999, "runAsGroup": 999},
                            "containers": [
                                {
                                    "name": "redis",
                                    "image": "redis:7.4.2-bookworm",
                                    "command": ["redis-server"],
                                    "args": [
                                        "--port",
                                        "6379",
                                        "--save",
                                        "",
                                        "--appendonly",
                                        "no",
                                        "--protected-mode",
                                        "no",
                                    ],
                                    "ports": [{"name": "redis", "containerPort": 6379}],
                                    "readinessProbe": {
                                        "tcpSocket": {"port": "redis"},
                                        "periodSeconds": 1,
                                    },
                                }
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "extra-redis"},
                "spec": {
                    "selector": {"app": "extra-redis"},
                    "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}],
                },
            },
        ],
    }
    manifest = cluster.workdir / "extra-redis.json"
    manifest.write_text(json.dumps(extra))
    await run(cluster, "kubectl", "-n", NS, "apply", "-f", str(manifest))
    await until(
        lambda: any(
            is_ready(p)
            for p in get(cluster, f"/api/v1/namespaces/{NS}/pods?labelSelector=app=extra-redis")[
                "items"
            ]
        ),
        "the extra Redis ready",
    )
    before = {
        p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"]
        for p in fleet_pods(cluster)
    }
    nodes = get(cluster, f"/apis/wsfleet.io/v1alpha1/namespaces/{NS}/wsfleets/{FLEET}")["spec"][
        "redis"
    ]["nodes"]
    patch = json.dumps(
        {"spec": {"redis": {"nodes": [*nodes, {"host": "extra-redis", "port": 6379}]}}}
    )
    await run(cluster, "kubectl", "-n", NS, "patch", "wsfleet", FLEET, "--type=merge", "-p", patch)

    async def both_redis_everywhere() -> bool:
        for pod in fleet_pods(cluster):
            links = (await cluster_view(cluster, pod))["redis"]
            if len(links) != 2 or not all(
                link["publisher"] and link["subscriber"] for link in links
            ):
                return False
        return True

    await until(
        both_redis_everywhere,
        "every pod linked to both Redis nodes (through its mounted ConfigMap)",
        60,
    )
    after = {
        p["metadata"]["uid"]: p["status"]["containerStatuses"][0]["restartCount"]
        for p in fleet_pods(cluster)
    }
    assert after == before, "the hot-plug restarted or replaced a pod"

    clients = await connected(cluster, session, ["h0", "h1", "h2"])
    try:
        assert await clients[2].say(7)
        try:
            await until(
                lambda: all(7 in c.heard.get("h2", ()) for c in clients),
                "a message after the hot-plug",
                10,
            )
        except AssertionError as exc:
            views = [await cluster_view(cluster, p) for p in fleet_pods(cluster)]
            raise AssertionError(
                f"{exc}; heard: {[(c.name, c.heard, c.close_codes) for c in clients]}; {views}"
            ) from None
    finally:
        for c in clients:
            await c.close()


async def test_an_image_change_rolls_the_fleet_under_traffic(
    cluster: Cluster, release: str, session: aiohttp.ClientSession
) -> None:
    old = {p["metadata"]["name"] for p in fleet_pods(cluster)}
    clients = await connected(cluster, session, [f"r{i}" for i in range(4)])
    try:
        stop = asyncio.Event()
        talk = asyncio.create_task(chatter(clients, stop, interval=0.1))
        # by editing the resource, like the hot-plug before it (a `helm upgrade` now would
        # conflict with that edit's field manager: Helm 4 applies server-side)
        image = get(cluster, f"/apis/wsfleet.io/v1alpha1/namespaces/{NS}/wsfleets/{FLEET}")["spec"][
            "image"
        ]
        patch = json.dumps({"spec": {"image": image.rsplit(":", 1)[0] + ":e2e-next"}})
        await run(
            cluster, "kubectl", "-n", NS, "patch", "wsfleet", FLEET, "--type=merge", "-p", patch
        )

        def rolled() -> bool:
            pods = fleet_pods(cluster)
            return (
                len(pods) == 2
                and not old & {p["metadata"]["name"] for p in pods}
                and all(
                    is_ready(p) and p["spec"]["containers"][0]["image"].endswith(":e2e-next")
                    for p in pods
                )
            )

        await until(rolled, "the fleet rolled to the new image", 120)
        for c in clients:
            await c.wait_online()
        marks = {c.name: len(c.acked) for c in clients}
        try:
            await until(
                lambda: all(len(c.acked) > marks[c.name] for c in clients),
                "everyone talking after the roll",
                20,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {[c.state() for c in clients]}, chatter {talk}") from None
        stop.set()
        await talk
        assert all(c.close_codes == [1012] * len(c.close_codes) for c in clients), [
            c.close_codes for c in clients
        ]
        assert all(c.reconnects >= 1 for c in clients), "a client was never moved off an old pod"
        assert await clients[0].say(10_000)
        await until(
            lambda: all(10_000 in c.heard.get("r0", ()) for c in clients),
            "a message to every client after the roll",
            10,
        )
    finally:
        for c in clients:
            await c.close()


async def test_a_killed_node_process_is_restarted_in_place_and_serves_again(
    cluster: Cluster, release: str, session: aiohttp.ClientSession
) -> None:
    victim = fleet_pods(cluster)[0]
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    restarts = victim["status"]["containerStatuses"][0]["restartCount"]
    pid = cluster.container_pid(NS, name, "wsfleet")
    os.kill(pid, signal.SIGKILL)

    def restarted() -> Any:
        pod = get(cluster, f"/api/v1/namespaces/{NS}/pods/{name}")
        status = pod["status"]["containerStatuses"][0]
        return status["restartCount"] > restarts and is_ready(pod) and pod

    # The restarted process finds its own name still leased in Redis (the killed one could not
    # say goodbye), exits, and is restarted with back-off until the lease expires (10 s): a
    # few restarts, all under the same pod name.
    pod = await until(restarted, "the killed container restarted in place and ready", 90)
    assert pod["metadata"]["uid"] == uid
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] in (1, 137)
    assert cluster.container_pid(NS, name, "wsfleet") != pid
    status, body = await pod_http(cluster, pod["status"]["podIP"], 9100, "/readyz")
    assert status == 200, body
    clients = await spread(cluster, session, "k", pods=2)  # the restarted pod serves clients
    try:
        assert await clients[0].say(1)
        await until(
            lambda: all(1 in c.heard.get("k0", ()) for c in clients), "messages across pods", 10
        )
    finally:
        for c in clients:
            await c.close()


async def test_an_unready_pod_can_be_evicted_during_a_redis_outage(
    cluster: Cluster, release: str
) -> None:
    pdb = get(cluster, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{FLEET}")
    await run(
        cluster, "kubectl", "-n", NS, "scale", "deployment", f"{FLEET}-dev-redis", "--replicas=0"
    )
    await run(cluster, "kubectl", "-n", NS, "scale", "deployment", "extra-redis", "--replicas=0")
    try:
        await until(
            lambda: not any(is_ready(p) for p in fleet_pods(cluster)),
            "every fleet pod unready without Redis",
            60,
        )
        await until(
            lambda: (
                (
                    s := get(
                        cluster, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{FLEET}"
                    )["status"]
                ).get("currentHealthy")
                == 0
                and s
            ),
            "the PDB sees no healthy pod",
            30,
        )
        victim = fleet_pods(cluster)[0]["metadata"]["name"]
        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": victim, "namespace": NS},
        }
        resp = cluster.plane.request(
            "POST", f"/api/v1/namespaces/{NS}/pods/{victim}/eviction", eviction
        )
        # the operator's PDB lets an unhealthy pod go even while the budget is not met, so a node
        # drain or an upgrade does not wait for the Redis outage to end
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        assert resp.status == 201, resp.body
        await until(
            lambda: victim not in {p["metadata"]["name"] for p in fleet_pods(cluster)},
            "the evicted pod gone (its node can be drained during the outage)",
            60,
        )
    finally:
        await run(
            cluster,
            "kubectl",
            "-n",
            NS,
            "scale",
            "deployment",
            f"{FLEET}-dev-redis",
            "--replicas=1",
        )
        await run(
            cluster, "kubectl", "-n", NS, "scale", "deployment", "extra-redis", "--replicas=1"
        )
    await fleet_ready(cluster, 2, timeout=90)


async def test_the_dashboards_have_data_from_a_prometheus_using_the_service_monitor(
    cluster: Cluster, release: str, session: aiohttp.ClientSession
) -> None:
    rendered = await run(
        cluster, "helm", "template", RELEASE, CHART, "-n", NS, *VALUES,
        "--set", "monitoring.serviceMonitor.enabled=true",
        "--show-only", "templates/servicemonitor.yaml",
    )  # fmt: skip
    service_monitor = yaml.safe_load(rendered)
    pods = await fleet_ready(cluster, 2)
    clients = await spread(cluster, session, "m", pods=2)
    try:
        for i, c in enumerate(clients):  # a bit of everything the dashboards show
            assert await c.say(i)
        await clients[0].call("broadcast", {"n": 1})
        for c in clients:  # a handler error on each pod (no text to say)
            assert c.ws is not None
            await c.ws.send_str('{"event":"say","payload":{"room":"e2e"}}')
        for _ in range(4):  # refused by the app's authenticator, on each pod (round robin)
            with contextlib.suppress(aiohttp.WSServerHandshakeError):
                await session.ws_connect(url(cluster) + "?token=deny", headers={"Host": HOST})
        names = {p["metadata"]["name"] for p in pods}
        for c in clients:  # a call from one pod to every other one, through Redis (once the
            # fleet's registry lists the other pod again after the Redis outage before)
            others = await until(
                lambda c=c: _one_other(c), "a cross-server call answered by the other pod", 30
            )
            assert set(others) < names, others
        for c in clients:  # closed connections on each pod (spread put two on each)
            await c.close()
        clients = await spread(cluster, session, "n", pods=2)  # and open ones again
        async with prometheus(cluster, service_monitor) as prom:
            # each pod once (the headless Service is dropped by the ServiceMonitor's relabeling)
            await until(
                lambda: _value(prom, f'count(up{{job="{FLEET}",namespace="{NS}"}} == 1)', 2),
                "Prometheus scrapes both pods through the ServiceMonitor's selectors",
                30,
            )
            await until(
                lambda: _value(prom, f'count(count_over_time(up{{job="{FLEET}"}}[30s]) >= 4)', 2),
                "a few scrapes of each pod",
                30,
            )
            variables = {
                "$__rate_interval": "30s",
                "$namespace": NS,
                "$job": FLEET,
                "$pod": pods[0]["metadata"]["name"],
                "$redis": ".*",
            }
            empty = []
            for board, title, expr in dashboard_queries(variables):
                if not await prom.query(expr):  # a malformed query fails inside query()
                    empty.append(f"{board} / {title}: {expr}")
            assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    finally:
        for c in clients:
            await c.close()


async def _one_other(client: Client) -> list[str] | None:
    others = await client.call("nodes", None)
    return others if len(others) == 1 else None


async def _value(prom: Prometheus, expr: str, expected: float) -> bool:
    result = await prom.query(expr)
    return bool(result) and float(result[0]["value"][1]) == expected


def dashboard_queries(variables: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(dashboard, panel title, expr)`` of every query of the chart's dashboards, with the
    variables filled in as Grafana would for this release."""
    queries = []
    for path in sorted((REPO / "helm" / "wsfleet" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in variables.items():
                    expr = expr.replace(name, value)
                queries.append((path.name, panel["title"], expr))
    assert len(queries) > 20, "the chart's dashboards were not found"
    return queries


async def test_helm_uninstall_garbage_collects_every_owned_object(
    cluster: Cluster, release: str
) -> None:
    fleet_uid = get(cluster, f"/apis/wsfleet.io/v1alpha1/namespaces/{NS}/wsfleets/{FLEET}")[
        "metadata"
    ]["uid"]
    await run(cluster, "helm", "uninstall", RELEASE, "-n", NS)
    await run(cluster, "kubectl", "-n", NS, "delete", "deployment,service", "extra-redis")

    def owned_left() -> list[str]:
        left = []
        for path in (
            f"/apis/apps/v1/namespaces/{NS}/deployments",
            f"/apis/apps/v1/namespaces/{NS}/replicasets",
            f"/api/v1/namespaces/{NS}/pods",
            f"/api/v1/namespaces/{NS}/services",
            f"/api/v1/namespaces/{NS}/configmaps",
            f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
            f"/apis/wsfleet.io/v1alpha1/namespaces/{NS}/wsfleets",
        ):
            for item in get(cluster, path)["items"]:
                if item["metadata"]["name"] != "kube-root-ca.crt":
                    left.append(
                        f"{item.get('kind', path.rsplit('/', 1)[-1])}/{item['metadata']['name']}"
                    )
        return left

    await until(lambda: not owned_left(), "nothing left in the namespace", 90)
    assert get(cluster, f"/apis/wsfleet.io/v1alpha1/namespaces/{NS}/wsfleets/{FLEET}") is None
    for node in cluster.node_names:  # and no pod process or network namespace is left on a node
        assert not list((cluster.workdir / node / "pods").glob(f"{NS}_*")), node
    assert fleet_uid
