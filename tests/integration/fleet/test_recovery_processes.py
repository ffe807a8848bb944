"""Recovery across real node processes: a client streaming room and direct messages while its
node is drained (SIGTERM) or killed (SIGKILL) reconnects through the balancer to the other node
and receives every message exactly once, in order."""

from __future__ import annotations

import asyncio
import signal

import pytest
from tests.balancer import Backend, Balancer
from tests.conftest import wait_until
from tests.integration.fleet.conftest import MakeFleet
from tests.integration.fleet.test_recovery import RECOVERY, Publisher, Recorder
from tests.procs import NodeProcess, start_node
from tests.redis_procs import RedisProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def node(redis: RedisProcess, name: str) -> NodeProcess:
    return await start_node(
        [
            "--redis",
            redis.address,
            "--server-name",
            name,
            "--app",
            "tests.fixtures.recovery_app:setup",
            "--recovery",
            "true",
            "--drain-timeout",
            "1",
            "--lease-refresh",
            "0.5",
            "--probe-interval",
            "0.5",
        ]
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["drain", "kill-9"])
async def test_a_client_of_a_stopped_node_process_misses_nothing(
    redis: RedisProcess, make_fleet: MakeFleet, sig: signal.Signals
) -> None:
    (source,) = await make_fleet([redis], 1, names=["source"], settings=RECOVERY)
    a = await node(redis, "proc-a")
    b = await node(redis, "proc-b")
    balancer = Balancer()
    await balancer.start()
    recorder = Recorder(balancer.url("id=p1"), fast_reconnect_interval=0.1)
    publisher = Publisher(source, "p1")
    try:
        backend_a = Backend(a.port, a.internal_url + "/readyz")
        balancer.add(backend_a)
        await balancer.wait_ready(backend_a)
        await recorder.client.connect()
        await recorder.client.wait_open(timeout=10)
        # the app joined the room and the session's marks are written once this arrives
        await wait_until(lambda: recorder.client.recovery_session is not None)
        backend_b = Backend(b.port, b.internal_url + "/readyz")
        balancer.add(backend_b)
        await balancer.wait_ready(backend_b)
        publisher.start()
        await wait_until(lambda: len(recorder.room) > 30 and len(recorder.direct) > 30, 10)
        a.proc.send_signal(sig)
        await a.wait(timeout=15)
        await wait_until(lambda: len(recorder.recoveries) == 1, 15)
        assert recorder.recoveries[0].recovered, recorder.recoveries[0]
        assert balancer.routed.get(b.port) == 1
        count = len(recorder.room)
        await wait_until(lambda: len(recorder.room) > count + 30, 10)
        await publisher.stop()
        total = publisher.sent
        await wait_until(lambda: len(recorder.room) >= total and len(recorder.direct) >= total, 10)
        assert recorder.room == list(range(total))
        assert recorder.direct == list(range(total))
    finally:
        if publisher._task is not None and not publisher._task.done():
            await publisher.stop()
        await asyncio.wait_for(recorder.client.aclose(), 5)
        await balancer.close()
        for proc in (a, b):
            if proc.proc.returncode is None:
                await proc.stop()
