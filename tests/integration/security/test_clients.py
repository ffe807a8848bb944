"""Client identity and origin: a socket id comes from a verified token, so a client on another
node cannot take over alice's; pages of other origins are refused with 403 before the upgrade."""

from __future__ import annotations

import aiohttp
import pytest
from tests.conftest import Connect, StartServer
from tests.integration.fleet.conftest import FAST
from tests.redis_procs import RedisProcess

from wsfleet import tokens
from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.demo.app import setup as demo_setup
from wsfleet.server import Refuse, Server, ServerSettings, UpgradeRequest

KEYS = tokens.Keys.parse("app1:" + "q" * 40)


def authenticate(request: UpgradeRequest) -> str:
    """The README quickstart's hook: the socket id is the verified token's subject."""
    try:
        return tokens.verify(KEYS, request.param("token") or "").subject
    except tokens.TokenError as exc:
        raise Refuse(401, f"Unauthorized: {exc}") from None


async def handshake_status(url: str, **kwargs: object) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, **kwargs)  # type: ignore[arg-type]
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def test_an_id_cannot_be_taken_over_from_another_node(
    redis: RedisProcess, connect: Connect
) -> None:
    servers = []
    for name in ("node-a", "node-b"):
        fleet = FleetSettings(redis=(RedisNode.parse(redis.address),), server_name=name, **FAST)
        server = Server(fleet=fleet, authenticate=authenticate)
        servers.append((server, await server.start("127.0.0.1", 0)))
    try:
        (a, port_a), (b, port_b) = servers
        alice = await connect(f"ws://127.0.0.1:{port_a}/ws?token={tokens.issue(KEYS, 'alice')}")
        await alice.send("")
        assert await alice.recv() == ""
        # the attack of the old quickstart: ?id=alice on node B
        url_b = f"ws://127.0.0.1:{port_b}/ws"
        assert await handshake_status(f"{url_b}?id=alice") == 401
        assert await handshake_status(f"{url_b}?id=alice&token=forged.token.x") == 401
        mallory = await connect(f"{url_b}?id=alice&token={tokens.issue(KEYS, 'mallory')}")
        await mallory.send("")
        assert await mallory.recv() == ""
        assert b.get_socket("mallory") is not None and b.get_socket("alice") is None
        assert a.to_socket_id("alice", "still", "here")
        assert await alice.recv() == '{"event":"still","payload":"here"}'
    finally:
        for server, _ in servers:
            await server.close()


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://app.example.com", 101),
        ("https://APP.example.com/", 101),
        ("https://evil.example", 403),
        ("null", 403),
        (None, 101),  # not a browser: no Origin header
    ],
)
async def test_other_origins_are_refused_before_the_upgrade(
    start_server: StartServer, origin: str | None, status: int
) -> None:
    running = await start_server(ServerSettings(allowed_origins=("https://app.example.com",)))
    headers = {"Origin": origin} if origin is not None else {}
    assert await handshake_status(running.url(), headers=headers) == status
    refused = running.server.stats.connections_refused.get("403", 0)
    assert refused == (1 if status == 403 else 0)


async def test_the_demo_accepts_its_own_page_only(start_server: StartServer) -> None:
    running = await start_server(setup=demo_setup)
    own = f"http://127.0.0.1:{running.port}"
    assert await handshake_status(running.url(), headers={"Origin": own}) == 101
    assert await handshake_status(running.url(), headers={"Origin": "http://evil.test"}) == 403
    other_port = f"http://127.0.0.1:{running.port + 1}"
    assert await handshake_status(running.url(), headers={"Origin": other_port}) == 403
