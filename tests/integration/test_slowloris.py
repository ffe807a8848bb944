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


async def test_half_open_upgrade_requests_are_capped_and_dropped_after_the_timeout() -> None:
    node = await start_node(["--handshake-timeout", "2", "--max-pending-handshakes", "150"])
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        start = time.monotonic()
        conns = list(await asyncio.gather(*(_half_open(node.port) for _ in range(HALF_OPEN))))
        answers: list[bytes] = []
        async with asyncio.timeout(15):  # each one sees the server end it (EOF or reset)
            for reader, _ in conns:
                answer = b""
                with contextlib.suppress(ConnectionResetError):
                    answer = await reader.read()
                answers.append(answer)
        took = time.monotonic() - start
        # beyond the cap: refused at once with a clear status; the rest dropped at the timeout
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(busy) == HALF_OPEN - 150, answers[:3]
        assert b"Too many connections waiting" in busy[0]
        assert 1.9 <= took < 15, took
        async with aiohttp.ClientSession() as session:  # and the node still serves
            ws = await session.ws_connect(node.url())
            await ws.close()
    finally:
        for _, writer in conns:
            writer.close()
        await node.stop()
