"""``/metrics`` of a live two-node fleet after a scripted workload: exact counter values, and every
metric docs/operations.md documents is exported."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.ops.conftest import OpenInternal, get
from tests.redis_procs import RedisProcess

from wsfleet.server import Server

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def documented_metrics() -> list[str]:
    names = re.findall(r"^\| `(wsfleet_[a-z_]+)` \|", DOCS.read_text(), re.MULTILINE)
    assert len(names) > 40, "the metric table of docs/operations.md was not found"
    return names


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))
        self.samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in self.families
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        assert key in self.samples, f"no sample {name}{labels}"
        return self.samples[key]

    def names(self) -> set[str]:
        out = set()
        for family in self.families:
            out.add(family.name)
            if family.type == "counter":
                out.add(family.name + "_total")
        return out


def handlers(server: Server) -> None:
    server.on("ping", lambda socket, payload, ack: payload)

    @server.on("slow")
    async def slow(socket: Any, payload: Any, ack: Any) -> Any:
        await asyncio.sleep(0.01)
        return payload

    @server.on("boom")
    def boom(socket: Any, payload: Any, ack: Any) -> None:
        raise RuntimeError("boom")

    server.on_cross_server_event("q", lambda data, reply: "answer")


async def scrape(url: str) -> Scrape:
    status, text = await get(url + "/metrics")
    assert status == 200
    return Scrape(text)


async def test_metrics_of_a_live_fleet_after_a_workload(
    redis: RedisProcess, make_fleet: MakeFleet, open_internal: OpenInternal, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    for node in (a, b):
        handlers(node.server)
    await wait_until(lambda: a.server.is_ready and b.server.is_ready)
    http_a = await open_internal(a.server, room_namespaces=("chat",))
    http_b = await open_internal(b.server)
    alice = await join(connect, a, "alice")  # one heartbeat each
    bob = await join(connect, b, "bob")

    for i in range(3):
        await alice.send(f'{{"event":"ping","payload":{i},"callbackId":"p{i}"}}')
        assert await alice.recv() == f'{{"payload":{i},"callbackId":"p{i}"}}'
    await alice.send('{"event":"slow","payload":"s","callbackId":"s1"}')
    assert await alice.recv() == '{"payload":"s","callbackId":"s1"}'
    await alice.send('{"event":"boom","payload":null,"callbackId":"b1"}')
    await alice.send('{"event":"nope","payload":null}')
    await alice.send("{bad json")
    a.server.join_room("chat", "r1", "alice")
    a.server.broadcast("news", 1)
    assert await bob.recv() == '{"event":"news","payload":1}'
    assert await alice.recv() == '{"event":"news","payload":1}'  # boom sent no ack before it
    result = await a.server.emit_cross_server_async("q", 1, mode="all", exclude_self=True)
    assert result.payloads == {b.name: "answer"}
    await bob.close()
    await wait_until(lambda: b.server.connection_count == 0)

    m = await scrape(http_a.url)
    assert m.value("wsfleet_connections") == 1
    assert m.value("wsfleet_sockets") == 1
    assert m.value("wsfleet_connections_accepted_total") == 1
    assert m.value("wsfleet_messages_received_total", kind="event") == 5
    assert m.value("wsfleet_messages_received_total", kind="unknown_event") == 1
    assert m.value("wsfleet_messages_received_total", kind="heartbeat") == 1
    assert m.value("wsfleet_messages_received_total", kind="malformed") == 1
    assert m.value("wsfleet_messages_sent_total", kind="ack") == 4
    assert m.value("wsfleet_handler_duration_seconds_count", event="ping") == 3
    assert m.value("wsfleet_handler_duration_seconds_count", event="slow") == 1
    assert m.value("wsfleet_handler_duration_seconds_bucket", event="slow", le="0.005") == 0
    assert m.value("wsfleet_handler_duration_seconds_bucket", event="slow", le="+Inf") == 1
    assert m.value("wsfleet_handler_errors_total", event="boom") == 1
    assert m.value("wsfleet_ack_duration_seconds_count") == 4
    assert m.value("wsfleet_rooms") == 1
    assert m.value("wsfleet_room_members") == 1
    assert m.value("wsfleet_namespace_rooms", namespace="chat") == 1
    assert m.value("wsfleet_cluster_nodes") == 2
    assert m.value("wsfleet_broadcasts_total") == 1
    assert m.value("wsfleet_bus_published_total", channel="broadcast") == 1
    assert m.value("wsfleet_bus_published_total", channel="bridge") == 1
    assert m.value("wsfleet_rpc_calls_total", outcome="complete") == 1
    assert m.value("wsfleet_rpc_duration_seconds_count", mode="all") == 1
    assert m.value("wsfleet_rpc_pending_calls") == 0
    assert m.value("wsfleet_redis_node_up", redis=f"127.0.0.1:{redis.port}/0") == 1
    assert m.value("wsfleet_ready") == 1
    assert m.value("wsfleet_build_info", version=__import__("wsfleet").__version__) == 1

    n = await scrape(http_b.url)
    assert n.value("wsfleet_connections") == 0
    assert n.value("wsfleet_connections_closed_total", code="1000") == 1
    assert n.value("wsfleet_bus_received_total", channel="broadcast") == 1
    assert n.value("wsfleet_bus_received_total", channel="bridge") == 1
    assert n.value("wsfleet_bus_published_total", channel="inbox") == 1  # the reply
    assert n.value("wsfleet_messages_sent_total", kind="other") == 2  # heartbeat echo + news

    missing = [name for name in documented_metrics() if name not in m.names()]
    assert not missing, f"documented but not exported: {missing}"
    undocumented = {
        name for name in m.names() if name.startswith("wsfleet_") and not name.endswith("_created")
    } - set(documented_metrics())
    undocumented -= {name.removesuffix("_total") for name in documented_metrics()}
    assert not undocumented, f"exported but not documented: {sorted(undocumented)}"


async def test_event_labels_stay_bounded(
    start_server: Any, connect: Connect, open_internal: OpenInternal
) -> None:
    running = await start_server()
    for i in range(205):
        running.server.on(f"e{i}", lambda socket, payload, ack: None)
    http = await open_internal(running.server)
    client = await connect(running.url())
    for i in range(205):
        await client.send(f'{{"event":"e{i}","payload":null}}')
    await client.send("")
    assert await client.recv() == ""
    m = await scrape(http.url)
    events = {
        dict(labels)["event"]
        for (name, labels) in m.samples
        if name == "wsfleet_handler_duration_seconds_count"
    }
    assert len(events) == 201  # 200 names, then "other"
    assert m.value("wsfleet_handler_duration_seconds_count", event="other") == 5
