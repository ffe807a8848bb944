"""``/healthz``, ``/readyz`` and ``/cluster`` of real nodes, with Redis nodes stopped and started,
and an in-process drain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from tests.conftest import Connect, StartServer, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.ops.conftest import OpenInternal, get
from tests.redis_procs import RedisProcess

from wsfleet.server import ServerSettings, UpgradeRequest

pytestmark = pytest.mark.integration


async def wait_status(url: str, status: int, timeout: float = 10.0) -> dict[str, Any]:
    last: tuple[int, str] = (0, "")
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await get(url)
                if last[0] == status:
                    return dict(json.loads(last[1]))
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{url} still answers {last} after {timeout}s") from None


async def wait_until_reasons(url: str, count: int) -> list[str]:
    async with asyncio.timeout(10):
        while len(reasons := (await wait_status(url, 503))["reasons"]) < count or not all(
            "connection refused" in r for r in reasons[1:]
        ):
            await asyncio.sleep(0.05)
    return list(reasons)


async def test_readiness_follows_the_redis_nodes_and_liveness_does_not(
    redis_factory: Any, make_fleet: MakeFleet, open_internal: OpenInternal
) -> None:
    r1, r2 = await redis_factory(), await redis_factory()
    (node,) = await make_fleet([r1, r2], 1)
    http = await open_internal(node.server)
    ready = await wait_status(http.url + "/readyz", 200)
    assert ready == {"ready": True, "reasons": []}

    await r1.kill()
    await r2.kill()
    not_ready = await wait_status(http.url + "/readyz", 503)
    reasons = not_ready["reasons"]
    assert reasons[0] == "no working path through Redis (the bus probe has not returned recently)"
    # then the real cause per Redis node, once a reconnection failed
    causes = await wait_until_reasons(http.url + "/readyz", 3)
    assert {c.split(": ", 1)[0] for c in causes[1:]} == {
        f"Redis redis://127.0.0.1:{r.port}/0" for r in (r1, r2)
    }
    assert all("connection refused" in c for c in causes[1:]), causes
    assert await get(http.url + "/healthz") == (200, '{\n  "status": "ok"\n}')

    await r2.start()  # one Redis node back is enough
    await wait_status(http.url + "/readyz", 200)
    status, text = await get(http.url + "/cluster")
    view = json.loads(text)
    assert status == 200
    assert {(r["key"], r["probeOk"]) for r in view["redis"]} == {
        (f"127.0.0.1:{r1.port}/0", False),
        (f"127.0.0.1:{r2.port}/0", True),
    }


async def test_cluster_view_lists_live_nodes_and_counts(
    redis: RedisProcess, make_fleet: MakeFleet, open_internal: OpenInternal, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)
    http = await open_internal(a.server)
    await join(connect, a, "alice")
    a.server.join_room("chat", "r1", "alice")
    await wait_status(http.url + "/readyz", 200)
    status, text = await get(http.url + "/cluster")
    view = json.loads(text)
    assert status == 200
    assert view["node"] == a.name
    assert set(view["liveNodes"]) == {a.name, b.name}
    assert (view["connections"], view["sockets"], view["rooms"], view["roomMembers"]) == (
        1,
        1,
        1,
        1,
    )
    assert view["redis"][0]["publisher"] and view["redis"][0]["subscriber"]
    assert view["outageBuffer"] == 0 and view["pendingCalls"] == 0


async def test_drain_refuses_upgrades_and_closes_clients_with_1012(
    redis: RedisProcess, make_fleet: MakeFleet, open_internal: OpenInternal, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2, settings=ServerSettings(drain_timeout=1.0))
    http = await open_internal(a.server)
    clients = [await join(connect, a, f"u{i}") for i in range(20)]
    await wait_status(http.url + "/readyz", 200)

    drain = asyncio.create_task(a.server.drain())
    await wait_status(http.url + "/readyz", 503)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(a.url("id=late"))
    assert refused.value.status == 503
    codes = await asyncio.gather(*(c.closed() for c in clients))
    assert codes == [1012] * 20
    await asyncio.wait_for(drain, 5)
    assert a.server.stats.drained_connections == 20
    await wait_until(lambda: a.name not in b.server.live_nodes())  # it left the registry at once


async def test_a_connection_admitted_as_the_drain_begins_is_drained_too(
    start_server: StartServer, connect: Connect
) -> None:
    admitted = asyncio.Event()
    release = asyncio.Event()

    async def authenticate(request: UpgradeRequest) -> str:
        admitted.set()
        await release.wait()  # the upgrade passed the door; the drain begins meanwhile
        return "late"

    node = await start_server(ServerSettings(drain_timeout=1.0), authenticate=authenticate)
    opening = asyncio.create_task(connect(node.url()))
    await admitted.wait()
    drain = asyncio.create_task(node.server.drain())
    await wait_until(lambda: node.server.is_draining)
    release.set()
    client = await opening
    assert await client.closed() == 1012  # not 1001 when the drain window ends
    async with asyncio.timeout(5):
        await drain
