"""The fleet view's data (/fleet.json) on a real two-node fleet, and its page on the internal
port (the page itself is driven in Chromium by clients/js/test/browser/fleet-view.test.mjs)."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.ops.conftest import OpenInternal, get
from tests.redis_procs import RedisProcess


async def test_fleet_json_has_every_node_as_its_cluster_view_counts_it(
    redis: RedisProcess, make_fleet: MakeFleet, open_internal: OpenInternal, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    http_a = await open_internal(a.server)
    http_b = await open_internal(b.server)
    await join(connect, a, "alice")
    await join(connect, b, "bob")
    await join(connect, b, "carol")
    a.server.join_room("chat", "r1", "alice")
    b.server.join_room("chat", "r1", "bob")
    b.server.join_room("chat", "r2", "carol")

    status, text = await get(http_a.url + "/fleet.json")
    assert status == 200
    view = json.loads(text)
    assert view["self"] == a.name and view["fleet"] is True and view["missing"] == []
    by_name = {n["name"]: n for n in view["nodes"]}
    assert set(by_name) == {a.name, b.name}
    for node, http in ((a, http_a), (b, http_b)):
        _, cluster_text = await get(http.url + "/cluster")
        cluster = json.loads(cluster_text)
        summary = by_name[node.name]
        for field in ("connections", "sockets", "rooms", "roomMembers"):
            assert summary[field] == cluster[field], (node.name, field)
        assert summary["redis"][0]["key"] == cluster["redis"][0]["key"]
    assert (by_name[b.name]["connections"], by_name[b.name]["rooms"]) == (2, 2)
    # the view's own question to the fleet is not counted as the application's RPC traffic
    assert by_name[a.name]["rpc"]["complete"] == 0

    status, page = await get(http_a.url + "/")
    assert status == 200 and 'data-testid="chart-messages"' in page


async def test_a_node_that_leaves_is_a_remembered_change(
    redis: RedisProcess, make_fleet: MakeFleet, open_internal: OpenInternal
) -> None:
    a, b = await make_fleet([redis], 2)
    http = await open_internal(a.server)
    await b.server.close()

    async def left() -> bool:
        _, text = await get(http.url + "/fleet.json")
        events = json.loads(text)["events"]
        return any(e["kind"] == "node-left" and e["subject"] == b.name for e in events)

    async with asyncio.timeout(10):  # the registry drops b at once; the view samples 4x/s
        while not await left():
            await asyncio.sleep(0.1)
