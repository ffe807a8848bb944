"""Two wsfleet nodes on a Sentinel-managed master: a failover during a stream loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_sentinel import SentinelGroup

from wsfleet.bus.sentinel import SentinelLink

pytestmark = pytest.mark.integration


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path)
    try:
        group.start()
        yield group
    finally:
        group.stop()


async def test_a_sentinel_failover_during_a_stream_loses_nothing_and_keeps_order(
    sentinels: SentinelGroup, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([sentinels], 2)
    link = next(iter(a.server.fleet.bus.links.values()))  # type: ignore[union-attr]
    assert isinstance(link, SentinelLink)
    first = sentinels.master_port()
    client = await join(connect, b, "victim")
    sent = 0

    def switched() -> bool:
        current = link.resolver.current
        return current is not None and current[1] != first and link.publisher_healthy

    after = -1
    async with asyncio.timeout(30):
        while after < 0 or sent < after + 100:  # 100 more once the link moved
            a.server.to_socket_id("victim", "seq", sent)
            a.server.broadcast("tick", sent)
            sent += 1
            if sent == 100:
                await asyncio.to_thread(sentinels.failover)
            if after < 0 and sent > 100 and switched():
                after = sent
            await asyncio.sleep(0.005)
    received: list[str] = []
    with contextlib.suppress(TimeoutError):  # buffered meanwhile; a lost one is named below
        while len(received) < 2 * sent:
            received.append(await client.recv(timeout=10))
    seq = [m for m in received if '"seq"' in m]
    ticks = [m for m in received if '"tick"' in m]
    assert seq == [f'{{"event":"seq","payload":{i}}}' for i in range(sent)], missing(seq, sent)
    assert ticks == [f'{{"event":"tick","payload":{i}}}' for i in range(sent)], missing(ticks, sent)
    assert link.resolver.current == ("127.0.0.1", sentinels.master_port())


def missing(frames: list[str], sent: int) -> str:
    got = [int(frame.rsplit(":", 1)[1][:-1]) for frame in frames]
    lost = sorted(set(range(sent)) - set(got))[:20]
    return f"missing {lost} of {sent}, in order: {got == sorted(got)}"
