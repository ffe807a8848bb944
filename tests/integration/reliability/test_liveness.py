"""Liveness judged on evidence: a blocked event loop loses no message of a streaming subscriber."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from tests.conftest import wait_until
from tests.redis_procs import RedisProcess

from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import LinkTimings, RedisLink

pytestmark = pytest.mark.integration

COUNT = 3000


def _stream(port: int, started: threading.Event, stop: threading.Event) -> None:
    client = redis.Redis(port=port)
    pad = b"x" * 1000
    try:
        for seq in range(COUNT):
            if stop.is_set():
                return
            client.publish("stream", b"%d:" % seq + pad)
            if seq == 200:
                started.set()
    finally:
        client.close()


async def test_a_loop_blocked_longer_than_the_ping_timeout_loses_nothing(
    redis: RedisProcess,
) -> None:
    received: list[int] = []
    link = RedisLink(
        RedisNode.parse(redis.address),
        on_message=lambda _, channel, data: received.append(int(data.split(b":", 1)[0])),
        on_health=lambda *_: None,
        on_failed=lambda *_: None,
        timings=LinkTimings(command_timeout=0.3, ping_interval=0.2, ping_timeout=0.2),
    )
    link.set_channels({b"stream"})
    link.start()
    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=_stream, args=(redis.port, started, stop), daemon=True)
    try:
        await link.wait_subscribed([b"stream"])
        thread.start()
        await asyncio.to_thread(started.wait, 10)
        await wait_until(lambda: len(received) > 100)
        end = time.monotonic() + 1.5  # the loop is busy: no read, no timer, no task
        while time.monotonic() < end:
            pass
        await wait_until(lambda: len(received) >= COUNT or not thread.is_alive(), timeout=30)
        await wait_until(lambda: len(received) >= COUNT, timeout=5)
        assert received == list(range(COUNT))
        assert link.health.reconnects == 0
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
        await link.aclose()


async def test_a_resubscribe_delivers_every_message_already_sent_to_the_connection(
    redis: RedisProcess,
) -> None:
    received: list[int] = []
    link = RedisLink(
        RedisNode.parse(redis.address),
        on_message=lambda _, channel, data: received.append(int(data.split(b":", 1)[0])),
        on_health=lambda *_: None,
        on_failed=lambda *_: None,
        timings=LinkTimings(command_timeout=0.3, ping_interval=5.0, ping_timeout=2.0),
    )
    link.set_channels({b"stream"})
    link.start()
    try:
        await link.wait_subscribed([b"stream"])
        # Published while this loop does not read: all of it waits in the socket buffers.
        thread = threading.Thread(
            target=_stream, args=(redis.port, threading.Event(), threading.Event())
        )
        thread.start()
        thread.join(30)
        link.force_resubscribe()
        await wait_until(lambda: len(received) >= COUNT, timeout=10)
        assert received == list(range(COUNT))
        await wait_until(lambda: link.health.reconnects == 1)  # and it did resubscribe
        await link.wait_subscribed([b"stream"])
    finally:
        await link.aclose()
