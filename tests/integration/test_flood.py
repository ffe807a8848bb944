"""Fair scheduling: one client flooding a node (a real ``wsfleet serve`` process, real sockets)
does not stall the other clients, ``/healthz``, or the loop; the default rate limit closes it."""

from __future__ import annotations

import asyncio

from bench.flood import Flooder, healthy_client, healthz_seconds
from tests.procs import start_node

FLOOD_FRAMES = 300_000
APP = ["--app", "tests.fixtures.sample_app:setup"]


async def test_a_flooding_client_does_not_stall_the_others() -> None:
    node = await start_node([*APP, "--rate-limit-per-second", "off"])
    flooder: Flooder | None = None
    try:
        stop, ready = asyncio.Event(), asyncio.Event()
        healthy = asyncio.create_task(healthy_client(node.port, stop, ready))
        async with asyncio.timeout(10):
            await ready.wait()
        flooder = Flooder(node.port, FLOOD_FRAMES)
        flooder.start()
        probes: list[float] = []
        async with asyncio.timeout(120):
            while flooder.is_alive():
                assert node.internal_port is not None
                probes.append(await healthz_seconds(node.internal_port))
                await asyncio.sleep(0.2)
        stop.set()
        result = await healthy
        assert flooder.error is None and flooder.sent >= FLOOD_FRAMES
        # What a user notices: acks keep coming during the flood, and the node answers probes.
        assert result.longest_wait < 0.5, (
            f"the healthy client waited {result.longest_wait:.2f}s for an ack during the flood "
            f"({len(result.rtts)} round trips)"
        )
        assert probes and max(probes) < 0.5, probes
    finally:
        if flooder is not None:
            flooder.close()
        await node.stop()


async def test_the_default_rate_limit_closes_a_flooding_client_with_4004() -> None:
    node = await start_node(APP)
    flooder: Flooder | None = None
    try:
        flooder = Flooder(node.port, FLOOD_FRAMES)
        flooder.start()
        sock = flooder.sock

        def read_close() -> bytes:
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
                if b"\x88" in data[:1] or len(data) >= 4:
                    return data

        head = await asyncio.wait_for(asyncio.to_thread(read_close), 20)
        assert head[0] == 0x88, head  # a close frame ...
        assert int.from_bytes(head[2:4], "big") == 4004, head  # ... with 4004 (rate limited)
    finally:
        if flooder is not None:
            flooder.close()
        await node.stop()
