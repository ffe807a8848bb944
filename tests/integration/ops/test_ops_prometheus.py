"""A real Prometheus (Debian's ``prometheus`` package) scrapes a node's internal port, and PromQL
queries over the result give what the workload did."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.ops.conftest import OpenInternal
from tests.redis_procs import RedisProcess, free_port

from wsfleet.server import Refuse, UpgradeRequest

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")


def refuse_deny(request: UpgradeRequest) -> str | None:
    if request.param("id") == "deny":
        raise Refuse(401, "denied")
    return request.param("id")


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + "/api/v1/query", params={"query": expr}) as resp,
        ):
            body = await resp.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def value(self, expr: str) -> float | None:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else None

    async def wait_value(self, expr: str, expected: float, timeout: float = 15.0) -> None:
        last = None
        try:
            async with asyncio.timeout(timeout):
                while (last := await self.value(expr)) != expected:
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"{expr} = {last}, expected {expected}") from None


DASHBOARDS = Path(__file__).resolve().parents[3] / "helm" / "wsfleet" / "dashboards"
#: Dashboard variables as the Grafana of a cluster would fill them in for this test's targets.
VARIABLES = {
    "$__rate_interval": "30s",
    "$namespace": "test",
    "$job": "wsfleet",
    "$pod": "node-a",
    "$redis": ".*",
}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """``(dashboard, panel title, expr)`` for every query of the chart's dashboards."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                queries.append((path.name, panel["title"], expr))
    assert len(queries) > 20, "the chart's dashboards were not found"
    return queries


@contextlib.asynccontextmanager
async def prometheus(tmp_path: Path, targets: dict[str, str]) -> AsyncIterator[Prometheus]:
    if PROMETHEUS is None:
        pytest.fail("prometheus is not installed: run 'make test' (it installs Debian's package)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "wsfleet",
                        "static_configs": [
                            {"targets": [target], "labels": {"namespace": "test", "pod": pod}}
                            for pod, target in targets.items()
                        ],
                    }
                ],
            }
        )
    )
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Prometheus(port)
    try:
        async with asyncio.timeout(30), aiohttp.ClientSession() as session:
            while True:
                if proc.returncode is not None:
                    assert proc.stderr is not None
                    raise AssertionError(f"prometheus exited: {(await proc.stderr.read())!r}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(server.url + "/-/ready") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_prometheus_scrapes_two_nodes_and_promql_sees_the_workload(
    tmp_path: Path,
    redis: RedisProcess,
    make_fleet: MakeFleet,
    open_internal: OpenInternal,
    connect: Connect,
) -> None:
    a, b = await make_fleet([redis], 2)
    for node in (a, b):
        node.server.on("echo", lambda socket, payload, ack: payload)
        node.server.on("boom", lambda socket, payload, ack: 1 / 0)
    https = [await open_internal(node.server) for node in (a, b)]
    clients = [await join(connect, a, "alice"), await join(connect, b, "bob")]
    for i in range(5):
        for client in clients:
            await client.send(f'{{"event":"echo","payload":{i},"callbackId":"{i}"}}')
            assert await client.recv() == f'{{"payload":{i},"callbackId":"{i}"}}'
    targets = {
        pod: http.url.removeprefix("http://")
        for pod, http in zip(("node-a", "node-b"), https, strict=True)
    }
    # a bit of everything the dashboards show, on node-a (the one the per-node board looks at)
    a.server.set_authenticator(refuse_deny)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await connect(a.url("id=deny"))
    leaving = await join(connect, a, "leaving")
    await leaving.send('{"event":"boom","payload":null}')  # a handler error
    await leaving.close()
    a.server.broadcast("news", 1)
    b.server.on_cross_server_event("q", lambda data, reply: "answer")
    await a.server.emit_cross_server_async("q", 1, mode="all", exclude_self=True)

    async with prometheus(tmp_path, targets) as prom:
        await prom.wait_value('count(up{job="wsfleet"} == 1)', 2)
        await prom.wait_value("sum(wsfleet_connections)", 2)
        await prom.wait_value('sum(wsfleet_messages_received_total{kind="event"})', 11)
        await prom.wait_value('sum(wsfleet_connections_refused_total{reason="401"})', 1)
        await prom.wait_value('sum(wsfleet_handler_duration_seconds_count{event="echo"})', 10)
        await prom.wait_value("max(wsfleet_cluster_nodes)", 2)
        await prom.wait_value("sum(wsfleet_redis_node_up)", 2)
        p99 = await prom.value(
            "histogram_quantile(0.99, sum by (le) (wsfleet_handler_duration_seconds_bucket))"
        )
        assert p99 is not None and 0 < p99 <= 10
        by_node = await prom.query("sum by (instance) (wsfleet_acks_total)")
        assert by_node == []  # a name we do not export gives nothing, not an error

        await prom.wait_value('count(count_over_time(up{job="wsfleet"}[30s]) >= 3)', 2)
        empty = []
        for board, title, expr in dashboard_queries():
            if not await prom.query(expr):  # a malformed query fails inside query()
                empty.append(f"{board} / {title}: {expr}")
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
