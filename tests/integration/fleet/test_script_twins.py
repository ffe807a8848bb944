"""The memory broker's Python twins answer every Lua script of the bus exactly as Redis does.

The same command sequences run on a real redis-server (through a RedisLink) and on a
MemoryBroker (through a MemoryLink); every reply and every message published by a script must be
the same."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import wait_until
from tests.redis_procs import RedisProcess

from wsfleet.bus import directory, history, memory, registry
from wsfleet.bus.broker import BrokerLink, CallbackHandler, LinkTimings
from wsfleet.bus.memory_link import MemoryLink
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.resp import known_script

INBOX = "p:wsfleet:node:"
LEASE, NODES, INFO = "p:wsfleet:lease:n1", "p:wsfleet:nodes", "p:wsfleet:nodeinfo"
SOCK = "p:wsfleet:sock:s1"


def sequence(now_ms: int) -> list[tuple[Any, ...]]:
    r, d = registry, directory
    return [
        (
            "EVAL",
            r._REFRESH,
            3,
            LEASE,
            NODES,
            INFO,
            "boot1",
            10_000,
            now_ms + 10_000,
            "n1",
            b'{"v":1}',
            now_ms,
        ),
        (
            "EVAL",
            r._REFRESH,
            3,
            LEASE,
            NODES,
            INFO,
            "boot2",
            10_000,
            now_ms + 10_000,
            "n1",
            b"{}",
            now_ms,
        ),  # another boot with the same name: the holder is returned
        (
            "EVAL",
            r._REFRESH,
            3,
            "p:wsfleet:lease:n2",
            NODES,
            INFO,
            "b3",
            10_000,
            now_ms - 5,
            "n2",
            b"{}",
            now_ms,
        ),  # already expired in the sorted set
        ("EVAL", r._LIVE, 2, NODES, INFO, now_ms),
        # an instance token: a restart with the same proof takes the lease over, another not
        (
            "EVAL",
            r._REFRESH,
            3,
            "p:wsfleet:lease:t",
            NODES,
            INFO,
            "pf.b1",
            10_000,
            now_ms + 10_000,
            "t",
            b"{}",
            now_ms,
            "pf.",
        ),
        (
            "EVAL",
            r._REFRESH,
            3,
            "p:wsfleet:lease:t",
            NODES,
            INFO,
            "pf.b2",
            10_000,
            now_ms + 10_000,
            "t",
            b"{}",
            now_ms,
            "pf.",
        ),
        (
            "EVAL",
            r._REFRESH,
            3,
            "p:wsfleet:lease:t",
            NODES,
            INFO,
            "px.b3",
            10_000,
            now_ms + 10_000,
            "t",
            b"{}",
            now_ms,
            "px.",
        ),
        ("GET", "p:wsfleet:lease:t"),
        ("EVAL", d._CLAIM, 1, SOCK, "n1", 10_000, INBOX, b"notice-1"),
        ("EVAL", d._CLAIM, 1, SOCK, "n2", 10_000, INBOX, b"notice-2"),  # publishes to n1
        ("EVAL", d._SEND, 1, SOCK, INBOX, b"hello", "ws:private_socket"),
        ("EVAL", d._SEND, 1, "p:wsfleet:sock:nobody", INBOX, b"hi", "ws:private_socket"),
        ("EVAL", d._REFRESH, 2, SOCK, "p:wsfleet:sock:s2", "n2", 10_000),
        ("EVAL", d._REFRESH, 1, SOCK, "n1", 10_000),  # held by n2: one lost
        ("EVAL", d._RELEASE, 1, SOCK, "n1"),
        ("EVAL", d._RELEASE, 1, SOCK, "n2"),
        ("GET", SOCK),
        ("EVAL", r._LEAVE, 3, LEASE, NODES, INFO, "boot1", "n1"),
        ("EVAL", r._LIVE, 2, NODES, INFO, now_ms),
        ("PUBSUB", "NUMSUB", INBOX + "n1", "nobody"),
    ]


async def run(link: BrokerLink, got: list[tuple[bytes, bytes]], now_ms: int) -> list[Any]:
    channels = {(INBOX + "n1").encode(), (INBOX + "n2").encode(), b"ws:private_socket"}
    link.set_channels(channels)
    await link.wait_subscribed(channels)
    replies = [await link.call(*args) for args in sequence(now_ms)]
    await wait_until(lambda: len(got) >= 3)
    return replies


Body = Callable[[BrokerLink, list[tuple[bytes, bytes]]], Awaitable[Any]]


async def on_redis_and_twin(redis: RedisProcess, body: Body) -> list[Any]:
    """``body(link, messages)`` on a real redis-server, then on a memory broker: its results."""
    results = []
    for make in (
        lambda h: RedisLink(RedisNode.parse(redis.address), h, timings=LinkTimings()),
        lambda h: MemoryLink(RedisNode.parse("memory://twins"), h),
    ):
        got: list[tuple[bytes, bytes]] = []
        handler = CallbackHandler(
            lambda _, channel, data, got=got: got.append((channel, data)),
            lambda *_: None,
            lambda *_: None,
        )
        link = make(handler)
        link.start()
        try:
            await wait_until(lambda link=link: link.publisher_healthy and link.subscriber_healthy)
            results.append(await body(link, got))
        finally:
            await link.aclose()
            memory.forget_brokers()
    return results


async def test_every_script_twin_answers_like_redis(redis: RedisProcess) -> None:
    now_ms = 1_800_000_000_000

    async def body(link: BrokerLink, got: list[tuple[bytes, bytes]]) -> Any:
        return await run(link, got, now_ms), sorted(got)

    results = await on_redis_and_twin(redis, body)
    (redis_replies, redis_messages), (twin_replies, twin_messages) = results
    assert twin_replies == redis_replies
    assert twin_messages == redis_messages
    assert redis_replies[1] == b"boot1" and redis_messages  # the sequence does exercise them
    assert redis_replies[4:8] == [None, None, b"pf.b2", b"pf.b2"]  # taken over; then refused


def history_sequence() -> list[tuple[Any, ...]]:
    h = history
    own = "\n-- twinboot"
    publish, direct = known_script(h._APPEND_PUBLISH + own), known_script(h._APPEND_DIRECT + own)
    room, room_e = "p:h:r:ns:r1", "p:h:r:ns:r1:e"
    dm, dm_e = "p:h:d:s1", "p:h:d:s1:e"

    def append(stream: str, key: str, upkeep: str) -> tuple[Any, ...]:
        return ("EVALSHA", publish, 2, stream, stream + ":e", 3, 60_000, "ep-",
                b"live-" + key.encode(), "ws:room:ns", upkeep)  # fmt: skip

    def to_socket(envelope: bytes, route: str) -> tuple[Any, ...]:
        return ("EVALSHA", direct, 3, dm, dm_e, SOCK, 3, 60_000, "ep-", envelope, route,
                INBOX, "ws:private_socket", "0")  # fmt: skip

    state = h._STATE
    return [
        ("EVAL", state, 2, room, room_e, "", 60_000, "read", 10),  # nothing yet: no epoch
        ("EVAL", state, 2, room, room_e, "mark-epoch", 60_000, "mark", 0),  # creates one
        append(room, "b.1", "1"),
        append(room, "b.2", "0"),
        ("EVAL", state, 2, room, room_e, "", 60_000, "read", 10),
        append(room, "b.3", "0"),
        append(room, "b.4", "1"),  # over MAXLEN 3 (exact here, '~' on Redis: not compared)
        ("EVAL", state, 2, room, room_e, "", 60_000, "mark", 0),
        ("EVAL", state, 2, room, room_e, "", 60_000, "read", 10),
        to_socket(b"env-5", "1"),  # the owner is unknown: the private channel
        ("SET", SOCK, "n1"),
        to_socket(b"env-6", "1"),  # to n1's inbox
        to_socket(b"env-7", "0"),  # stored only
        ("EVAL", state, 2, dm, dm_e, "", 60_000, "read", 10),
        ("HSET", "p:rs:tok", "sid", "s1", "m:r", "ns/r1"),
        ("PEXPIRE", "p:rs:tok", 60_000),
        ("HDEL", "p:rs:tok", "m:r"),
        ("HGETALL", "p:rs:tok"),
        ("PEXPIRE", "p:rs:none", 60_000),
    ]


def normalized(value: Any, ids: dict[bytes, bytes]) -> Any:
    """Stream ids (the server's clock) replaced by their order of appearance in one reply."""
    if isinstance(value, list):
        return [normalized(v, ids) for v in value]
    if isinstance(value, bytes):
        for found in re.findall(rb"\d+-\d+", value):
            ids.setdefault(found, b"id%d" % len(ids))
            value = value.replace(found, ids[found])
    return value


async def test_the_history_twins_answer_like_redis(redis: RedisProcess) -> None:
    async def body(link: BrokerLink, got: list[tuple[bytes, bytes]]) -> Any:
        channels = {b"ws:room:ns", (INBOX + "n1").encode(), b"ws:private_socket"}
        link.set_channels(channels)
        await link.wait_subscribed(channels)
        replies = [await link.call(*args) for args in history_sequence()]
        await wait_until(lambda: len(got) >= 6)
        return [normalized(r, {}) for r in replies], got

    results = await on_redis_and_twin(redis, body)
    (redis_replies, redis_messages), (twin_replies, twin_messages) = results
    assert twin_messages == redis_messages
    assert [m[1] for m in redis_messages] == [
        b"live-b.1", b"live-b.2", b"live-b.3", b"live-b.4", b"env-5", b"env-6"
    ]  # fmt: skip
    # the full read after MAXLEN: Redis' '~' keeps whole stream nodes, the twin exactly 3
    trimmed = 8
    assert twin_replies[:trimmed] == redis_replies[:trimmed]
    assert twin_replies[trimmed + 1 :] == redis_replies[trimmed + 1 :]
    assert twin_replies[4][1] == 2
    assert [e[1][1] for e in twin_replies[4][2]] == [b"live-b.1", b"live-b.2"]
    assert twin_replies[trimmed][1] == redis_replies[trimmed][1] == 4
    assert [e[1][1] for e in twin_replies[trimmed][2]] == [b"live-b.2", b"live-b.3", b"live-b.4"]
