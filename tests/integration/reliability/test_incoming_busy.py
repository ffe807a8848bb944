"""Incoming cross-server requests are bounded: beyond ``max_incoming_calls`` running listeners a
request is answered ``busy`` at once, and the caller's result says so for that node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.integration.fleet.conftest import MakeFleet
from tests.integration.fleet.conftest import make_fleet as make_fleet
from tests.redis_procs import RedisProcess

from wsfleet.bus import Outcome

pytestmark = pytest.mark.integration


async def test_requests_beyond_the_bound_are_answered_busy_at_once(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    caller, callee = await make_fleet([redis], 2, max_incoming_calls=2)
    release = asyncio.Event()

    async def slow(data: dict[str, Any], reply: Any) -> str:
        await release.wait()
        return "done"

    callee.server.on_cross_server_event("slow", slow)
    calls = [
        asyncio.create_task(
            caller.server.emit_cross_server_async(
                "slow", i, target_server=callee.name, mode="all", timeout=10
            )
        )
        for i in range(4)
    ]
    await wait_until(lambda: sum(c.done() for c in calls) >= 2)
    busy = [c for c in calls if c.done()]
    assert len(busy) == 2  # answered at once, while two listeners still run
    for c in busy:
        result = c.result()
        assert result.outcomes == {callee.name: Outcome.BUSY}
        assert result.payloads == {callee.name: {"error": "busy"}}
    release.set()
    for c in calls:
        if c not in busy:
            result = await c
            assert result.outcomes == {callee.name: Outcome.ANSWERED}
            assert result.payloads == {callee.name: "done"}
    assert callee.server.fleet is not None and callee.server.fleet.cross.incoming.busy == 2
