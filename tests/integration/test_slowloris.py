"""Slowloris: half-open upgrade requests to a real ``wsfleet serve`` process are dropped after
``handshake_timeout``, and the node keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
from tests.procs import start_node

HALF_OPEN = 200


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Slow: ")  # never ends
    await writer.drain()
    return reader, writer


async def test_half_open_upgrade_requests_are_dropped_after_the_handshake_timeout() -> None:
    node = await start_node(["--handshake-timeout", "1"])
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        start = time.monotonic()
        conns = list(await asyncio.gather(*(_half_open(node.port) for _ in range(HALF_OPEN))))
        async with asyncio.timeout(15):  # each one sees the server end it (EOF or reset)
            for reader, _ in conns:
                with contextlib.suppress(ConnectionResetError):
                    assert await reader.read() == b""
        took = time.monotonic() - start
        assert 0.9 <= took < 15, took
        async with aiohttp.ClientSession() as session:  # and the node still serves
            ws = await session.ws_connect(node.url())
            await ws.close()
    finally:
        for _, writer in conns:
            writer.close()
        await node.stop()
