"""The soak: steady mixed traffic for minutes, connection churn, one Redis restart and one
hot-plug, with the nodes' RSS sampled every 10 s."""

from __future__ import annotations

import asyncio
import contextlib
import time

from chaos.clients import Client, Latency, Tally, echo_loop, stream
from chaos.procs import rss_mb
from chaos.scenarios import Row, control_set, fleet, settle

SAMPLE_EVERY = 10.0


async def soak(minutes: float) -> tuple[Row, list[tuple[float, float, float]]]:
    seconds = minutes * 60
    row = Row(
        f"soak {minutes:g} min",
        "2 Redis, 2 nodes; 50 msg/s room stream a->b, echo RTT on b, 5 broadcasts/s, "
        "connection churn 10/s",
        "one Redis restart at 1/3, one hot-plug (redis.set [A] then [A,B]) at 2/3",
    )
    samples: list[tuple[float, float, float]] = []
    async with fleet() as f:
        r1, r2 = await f.add_redis(2)
        a = await f.add_node("a", [r1, r2])
        b = await f.add_node("b", [r1, r2])
        tally, latency, stop = Tally(), Latency(), asyncio.Event()
        await f.receiver(b, "rx", tally, "said")
        sender = await f.receiver(a, "tx", Tally(), "said")
        healthy = await f.client(b, "healthy")
        announcer = await f.client(a, "announcer")
        await asyncio.sleep(1.0)
        churned = 0

        async def churn() -> None:
            nonlocal churned
            assert f.session is not None
            while not stop.is_set():
                node = (a, b)[churned % 2]
                with contextlib.suppress(Exception):
                    client = await Client(f.session, node.url(f"churn-{churned}")).open()
                    await client.call("join", {"room": f"churn-{churned % 50}"})
                    await client.close()
                churned += 1
                await asyncio.sleep(0.1)

        async def announce() -> None:
            n = 0
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    await announcer.send("broadcast", {"n": n, "text": "y" * 200})
                n += 1
                await asyncio.sleep(0.2)

        async def faults() -> None:
            await asyncio.sleep(seconds / 3)
            await r1.kill()
            await asyncio.sleep(3)
            await r1.start()
            await asyncio.sleep(seconds / 3)
            await control_set([r1, r2], [r1])
            await asyncio.sleep(10)
            await control_set([r1, r2], [r1, r2])

        tasks = [
            asyncio.create_task(stream(sender, tally, 50, stop)),
            asyncio.create_task(echo_loop(healthy, latency, stop)),
            asyncio.create_task(churn()),
            asyncio.create_task(announce()),
            asyncio.create_task(faults()),
        ]
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            samples.append((elapsed, rss_mb(a.pid), rss_mb(b.pid)))
            await asyncio.sleep(min(SAMPLE_EVERY, max(seconds - elapsed, 0.01)))
        stop.set()
        tasks[-1].cancel()  # the fault schedule, if the soak was shorter than it
        await asyncio.gather(*tasks, return_exceptions=True)
        await settle(tally)
        samples.append((time.monotonic() - start, rss_mb(a.pid), rss_mb(b.pid)))
        row.counts = tally.row()
        row.p50_ms, row.p99_ms = latency.percentiles()
        warm = [s for s in samples if s[0] >= min(60.0, seconds / 3)] or samples
        row.rss_before = warm[0][1]
        row.rss_after = samples[-1][1]
        growth = [(samples[-1][i] - warm[0][i]) / warm[0][i] * 100 for i in (1, 2)]
        row.notes.append(
            f"RSS growth after warm-up: a {growth[0]:+.1f}%, b {growth[1]:+.1f}%; "
            f"{churned} churned connections; echo timeouts {latency.timeouts}"
        )
        row.ok = row.counts["lost"] == 0 and max(growth) < 5.0
    return row, samples
