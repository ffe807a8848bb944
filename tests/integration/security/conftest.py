"""Attack tests: real nodes, a real redis-server, and an attacker who can publish on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from tests.integration.fleet.conftest import make_fleet  # noqa: F401  (the fixture)
from tests.redis_procs import RedisProcess


@dataclass
class Listener:
    """A TCP listener on loopback that records every connection and every byte it receives."""

    server: asyncio.Server | None = None
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while chunk := await reader.read(4096):
                self.received += chunk
                writer.write(b"+OK\r\n")
        finally:
            writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    trap = Listener()
    trap.server = await asyncio.start_server(trap._handle, "127.0.0.1", 0)
    yield trap
    trap.server.close()
    await trap.server.wait_closed()


class Attacker:
    """Someone with access to the fleet's Redis: publishes whatever bytes it likes."""

    def __init__(self, redis: RedisProcess) -> None:
        self.client = aioredis.Redis(host="127.0.0.1", port=redis.port)

    async def publish(self, channel: str, message: dict[str, Any] | bytes) -> int:
        data = message if isinstance(message, bytes) else msgpack.packb(message)
        return int(await self.client.publish(channel, data))

    async def aclose(self) -> None:
        await self.client.aclose()


@pytest.fixture
async def attacker(redis: RedisProcess) -> AsyncIterator[Attacker]:
    who = Attacker(redis)
    yield who
    await who.aclose()
