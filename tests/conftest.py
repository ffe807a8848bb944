"""Shared fixtures: a real server on a free loopback port and a raw WebSocket client that shows
frames byte by byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, settings

from tests.redis_procs import RedisProcess, free_port
from wsfleet.server import Server, ServerSettings

WAIT = 5.0

# Property tests check properties, not speed: a busy CI machine must not fail them for being slow.
settings.register_profile("wsfleet", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("wsfleet")


@dataclass
class Running:
    server: Server
    port: int

    def url(self, path: str = "/ws", query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")


class RawClient:
    """A minimal WebSocket peer: sends hand-written text, returns exactly what arrived."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self, timeout: float = WAIT) -> str:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, (
            f"expected a text frame, got {msg.type} {msg.data!r}"
        )
        return str(msg.data)

    async def closed(self, timeout: float = WAIT) -> int | None:
        """Wait for the server to end the connection; returns the close code (1006 if dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.ERROR,
                ):
                    break
        code = self.ws.close_code
        return 1006 if code is None else code

    async def close(self) -> None:
        await self.ws.close()


StartServer = Callable[..., Awaitable[Running]]
Connect = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    started: list[Server] = []

    async def start(
        settings: ServerSettings | None = None,
        *,
        authenticate: Any = None,
        setup: Callable[[Server], None] | None = None,
    ) -> Running:
        server = Server(settings, authenticate=authenticate)
        if setup is not None:
            setup(server)
        port = await server.start("127.0.0.1", 0)
        started.append(server)
        return Running(server, port)

    yield start
    for server in started:
        await server.close()


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    session = aiohttp.ClientSession()
    clients: list[RawClient] = []

    async def open_ws(url: str, **kwargs: Any) -> RawClient:
        ws = await session.ws_connect(url, autoclose=False, **kwargs)
        client = RawClient(ws)
        clients.append(client)
        return client

    yield open_ws
    for client in clients:
        if not client.ws.closed:
            await client.ws.close()
    await session.close()


@pytest.fixture
async def redis_factory(tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[RedisProcess]]]:
    started: list[RedisProcess] = []

    async def start() -> RedisProcess:
        workdir = tmp_path / f"redis{len(started)}"
        workdir.mkdir()
        node = RedisProcess(free_port(), workdir)
        started.append(node)
        await node.start()
        return node

    yield start
    for node in started:
        if node.stopped:
            node.resume()
        await node.kill()


@pytest.fixture
async def redis(redis_factory: Callable[[], Awaitable[RedisProcess]]) -> RedisProcess:
    return await redis_factory()


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait for a condition that a server-side callback will make true (checked every loop turn)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
