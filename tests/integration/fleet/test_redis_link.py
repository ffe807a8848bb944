"""One RedisLink against a real redis-server: pipelined batches, replies in order, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.redis_procs import RedisProcess

from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import Command, LinkError, LinkTimings, RedisLink

pytestmark = pytest.mark.integration


@dataclass
class Events:
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    failed: list[tuple[list[Command], BaseException]] = field(default_factory=list)
    health: list[tuple[str, bool]] = field(default_factory=list)


MakeLink = Callable[..., Awaitable[tuple[RedisLink, Events]]]


@pytest.fixture
async def make_link() -> AsyncIterator[MakeLink]:
    links: list[RedisLink] = []

    async def make(redis: RedisProcess, **timings: Any) -> tuple[RedisLink, Events]:
        events = Events()
        link = RedisLink(
            RedisNode.parse(redis.address),
            on_message=lambda _, channel, data: events.messages.append((channel, data)),
            on_health=lambda _, role, healthy, *__: events.health.append((role, healthy)),
            on_failed=lambda _, commands, error: events.failed.append((commands, error)),
            timings=LinkTimings(
                **{"command_timeout": 0.3, "ping_interval": 0.2, "ping_timeout": 0.2, **timings}
            ),
        )
        links.append(link)
        link.start()
        await wait_until(lambda: link.publisher_healthy and link.subscriber_healthy)
        return link, events

    yield make
    for link in links:
        await link.aclose()


async def test_commands_of_one_loop_turn_go_in_one_batch_and_replies_keep_their_order(
    redis: RedisProcess, make_link: MakeLink
) -> None:
    # no write by age: on a busy machine 300 submits can outlast the default 1 ms flush delay
    link, _ = await make_link(redis, flush_delay=60.0)
    batches = link.batches
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = []
    for _ in range(300):
        future: asyncio.Future[Any] = loop.create_future()
        link.submit(Command(("INCR", "counter"), future, pinned=True))
        futures.append(future)
    assert await asyncio.gather(*futures) == list(range(1, 301))
    assert link.batches == batches + 1  # one write for all 300
    assert link.in_flight == 0


async def test_a_command_submitted_after_flush_delay_writes_the_batch_within_the_turn(
    redis: RedisProcess, make_link: MakeLink
) -> None:
    link, _ = await make_link(redis)
    batches = link.batches
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Any] = loop.create_future()
    second: asyncio.Future[Any] = loop.create_future()
    link.submit(Command(("INCR", "n"), first, pinned=True))
    time.sleep(link.timings.flush_delay * 2)  # a handler's own work: the loop turn goes on
    link.submit(Command(("INCR", "n"), second, pinned=True))
    assert link.batches == batches + 1  # written before the turn ended
    assert [await first, await second] == [1, 2]


async def test_an_error_reply_or_a_bad_argument_fails_only_its_own_command(
    redis: RedisProcess, make_link: MakeLink
) -> None:
    link, events = await make_link(redis)
    loop = asyncio.get_running_loop()
    ok1, wrong, bad, ok2 = (loop.create_future() for _ in range(4))
    link.submit(Command(("SET", "k", "v"), ok1, pinned=True))
    link.submit(Command(("INCR", "k"), wrong, pinned=True))  # not an integer
    link.submit(Command(("SET", "k2", object()), bad, pinned=True))  # cannot be encoded
    link.submit(Command(("GET", "k"), ok2, pinned=True))
    assert await ok1 == b"OK"
    with pytest.raises(LinkError, match="not an integer"):
        await wrong
    with pytest.raises(LinkError, match="cannot send"):
        await bad
    assert await ok2 == b"v"
    assert events.failed == []
    assert link.publisher_healthy


async def test_messages_reach_the_subscriber_in_order(
    redis: RedisProcess, make_link: MakeLink
) -> None:
    link, events = await make_link(redis)
    link.set_channels({b"chan"})
    await link.wait_subscribed([b"chan"])
    for i in range(500):
        link.submit(Command(("PUBLISH", "chan", str(i))))
    await wait_until(lambda: len(events.messages) == 500)
    assert events.messages == [(b"chan", str(i).encode()) for i in range(500)]


async def test_a_silent_redis_hands_every_unanswered_command_back(
    redis: RedisProcess, make_link: MakeLink
) -> None:
    link, events = await make_link(redis)
    redis.pause()
    try:
        commands = [Command(("PUBLISH", "chan", str(i))) for i in range(20)]
        for command in commands:
            link.submit(command)
        await wait_until(lambda: bool(events.failed), timeout=5)  # after command_timeout
        handed_back = [c for batch, _ in events.failed for c in batch if c.args[0] != "PING"]
        assert handed_back == commands  # all of them, in order (the link's own pings aside)
        assert isinstance(events.failed[0][1], TimeoutError)
        assert not link.publisher_healthy and ("publisher", False) in events.health
    finally:
        redis.resume()
    await wait_until(lambda: link.publisher_healthy, timeout=10)
    assert await link.call("PING") == b"PONG"


async def test_a_restarted_redis_is_reconnected_and_resubscribed(
    redis: RedisProcess, make_link: MakeLink
) -> None:
    link, events = await make_link(redis)
    link.set_channels({b"chan"})
    await link.wait_subscribed([b"chan"])
    await redis.restart()
    await wait_until(lambda: link.publisher_healthy and link.is_subscribed([b"chan"]), 10)
    assert link.health.reconnects >= 1 and link.publisher_connects >= 2
    assert await link.call("PUBLISH", "chan", "after") == 1
    await wait_until(lambda: (b"chan", b"after") in events.messages)
