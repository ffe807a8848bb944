"""A Redis node that cannot be used says why: wrong password, a name that does not resolve."""

from __future__ import annotations

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
        return link.health.last_error or ""
    finally:
        await link.aclose()


async def test_a_wrong_password_is_reported_as_an_authentication_failure_with_redis_error(
    redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.command("CONFIG", "SET", "requirepass", "right")
    error = await _failing_link(f"redis://:wrong@127.0.0.1:{redis.port}", caplog)
    assert error.startswith("authentication failed: WRONGPASS")
    assert "cannot connect: authentication failed: WRONGPASS" in caplog.text


async def test_a_missing_password_is_reported_as_an_authentication_failure(
    redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.command("CONFIG", "SET", "requirepass", "right")
    error = await _failing_link(redis.address, caplog)
    assert error.startswith("authentication failed: NOAUTH")


async def test_a_host_name_that_does_not_resolve_says_so(caplog: pytest.LogCaptureFixture) -> None:
    error = await _failing_link("redis://wsfleet..invalid:6379", caplog)
    assert "cannot resolve the Redis host name 'wsfleet..invalid'" in error
    assert "cannot connect: cannot resolve" in caplog.text
