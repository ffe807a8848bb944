"""Client frames handled straight from the connection's queue (no read-loop wake-up per frame)
keep their order end to end, next to control frames and the in-flight handler limit."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
from typing import Any

import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

from wsfleet.server import Acknowledge, ServerSettings, Socket, ws_hook
from wsfleet.server.settings import WebSocketEngine, default_engine

pytestmark = pytest.mark.integration

NATIVE = default_engine() is WebSocketEngine.NATIVE


def unread_bytes(connection: Any) -> int:
    """Bytes a native connection has not handled: in its reader and still in the kernel."""
    sock = connection._transport.get_extra_info("socket")
    waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", waiting)[0]) + int(connection.queued_bytes())


async def test_pipelined_direct_messages_arrive_in_order_across_nodes(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    a, b = await make_fleet([redis], 2)

    @a.server.on("dm")
    def dm(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
        a.server.to_socket_id(payload["to"], "dm", payload["n"])

    sender = await join(connect, a, "s")
    target = await join(connect, b, "t")
    # Bursts (several frames per read) and single frames, with heartbeats in between.
    for i in range(300):
        await sender.send(f'{{"event":"dm","payload":{{"to":"t","n":{i}}}}}')
        if i % 50 == 49:
            await sender.send("")
            assert await sender.recv() == ""
            await asyncio.sleep(0)
    for i in range(300):
        assert await target.recv() == f'{{"event":"dm","payload":{i}}}'


async def test_frames_behind_a_full_handler_limit_wait_and_keep_their_order(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1, settings=ServerSettings(max_inflight_handlers=1))
    gate = asyncio.Event()
    seen: list[int] = []

    @a.server.on("slow")
    async def slow(socket: Socket, payload: int, ack: Acknowledge | None) -> int:
        seen.append(payload)
        await gate.wait()
        return payload

    @a.server.on("fast")
    def fast(socket: Socket, payload: int, ack: Acknowledge | None) -> int:
        seen.append(payload)
        return payload

    client = await join(connect, a, "c")
    await client.send('{"event":"slow","payload":0,"callbackId":"c0"}')
    await wait_until(lambda: seen == [0])  # handled at once: the one handler slot is now taken
    for i in range(1, 6):
        await client.send(f'{{"event":"fast","payload":{i},"callbackId":"c{i}"}}')
    socket = a.server.get_socket("c")
    assert socket is not None
    owner = socket._closer.__self__  # type: ignore[attr-defined]
    if NATIVE:  # reading paused at the full slot: all five wait, unread (6 header bytes each)
        sizes = sum(
            len(f'{{"event":"fast","payload":{i},"callbackId":"c{i}"}}') + 6 for i in range(1, 6)
        )
        await wait_until(lambda: unread_bytes(owner) == sizes)
    else:
        reader = owner._reader
        # all five arrived: the read loop holds the first, waiting for the slot, four are queued
        # (on the public path the read loop waits for the slot before it takes one: five are)
        queued = 5 if os.environ.get(ws_hook.PATH_ENV) == "public" else 4
        await wait_until(lambda: len(reader._buffer) == queued)
    assert seen == [0]
    gate.set()
    replies = [await client.recv() for _ in range(6)]
    assert seen == list(range(6))
    assert replies == [f'{{"payload":{i},"callbackId":"c{i}"}}' for i in range(6)]


@pytest.mark.skipif(
    os.environ.get(ws_hook.PATH_ENV) == "public" or NATIVE,
    reason="the suite runs on the public path or on the native engine",
)
async def test_the_installed_aiohttp_takes_the_direct_path(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    """The direct path relies on aiohttp internals; an aiohttp that changes them falls back to
    the plain read loop, silently slower: this says so instead."""
    (a,) = await make_fleet([redis], 1)
    await join(connect, a, "c")
    socket = a.server.get_socket("c")
    assert socket is not None
    reader = socket._closer.__self__._reader  # type: ignore[attr-defined]
    assert isinstance(reader, ws_hook.DirectQueue) and reader.usable, type(reader)
    assert reader.armed  # the read loop is parked on it
