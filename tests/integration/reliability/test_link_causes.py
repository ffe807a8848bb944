"""A Redis node that cannot be used says why in the log, once per change of cause."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tests.conftest import wait_until
from tests.redis_procs import RedisProcess

from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import LinkTimings, RedisLink

pytestmark = pytest.mark.integration


async def _failing_link(address: str, caplog: pytest.LogCaptureFixture) -> str:
    link = RedisLink(
        RedisNode.parse(address),
        on_message=lambda *_: None,
        on_health=lambda *_: None,
        on_failed=lambda *_: None,
        timings=LinkTimings(connect_timeout=1.0, backoff_initial=0.05, backoff_max=0.1),
    )
    caplog.set_level(logging.WARNING, "wsfleet.bus")
    link.start()
    try:
        await wait_until(lambda: link.health.last_error is not None)
        await asyncio.sleep(0.5)  # several more attempts (backoff 0.05-0.1 s), same cause
        return link.health.last_error or ""
    finally:
        await link.aclose()


async def test_a_wrong_password_is_logged_with_redis_error_once(
    redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.command("CONFIG", "SET", "requirepass", "right")
    error = await _failing_link(f"redis://:wrong@127.0.0.1:{redis.port}", caplog)
    assert "AUTH as user 'default' refused (WRONGPASS" in error
    lines = [r.getMessage() for r in caplog.records if "WRONGPASS" in r.getMessage()]
    assert len(lines) == 1  # once per change of cause, not once per retry


async def test_a_missing_password_says_what_redis_said(
    redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.command("CONFIG", "SET", "requirepass", "right")
    error = await _failing_link(redis.address, caplog)
    assert "NOAUTH" in error
    assert "NOAUTH" in caplog.text
