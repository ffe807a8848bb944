"""``await server.join_room_confirmed(...)``: once it returns, a room message published by any
node through any Redis node reaches the new member (issue 13, item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

from wsfleet.bus import envelopes as env
from wsfleet.bus.codec import BusCodec

pytestmark = pytest.mark.integration

ROUNDS = 60


class RawPublisher:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, redis: RedisProcess) -> RawPublisher:
        return cls(*await asyncio.open_connection("127.0.0.1", redis.port))

    async def publish(self, channel: bytes, data: bytes) -> int:
        # written synchronously, before the first await
        self.writer.write(b"*3\r\n$7\r\nPUBLISH\r\n")
        for part in (channel, data):
            self.writer.write(b"$%d\r\n%s\r\n" % (len(part), part))
        line = await self.reader.readline()
        assert line.startswith(b":"), line
        return int(line[1:])

    def close(self) -> None:
        self.writer.close()


async def test_a_message_published_right_after_the_join_is_never_missed(
    redis_factory: Callable[[], Awaitable[RedisProcess]], make_fleet: MakeFleet, connect: Connect
) -> None:
    redis_nodes = [await redis_factory(), await redis_factory()]
    a, b = await make_fleet(redis_nodes, 2, strategy="round-robin")
    member = await join(connect, b, "m")
    # Another pod's node, as fast as a publisher gets: a connection already open on each Redis
    # node whose PUBLISH is on the wire the moment the join returns, before this process runs
    # anything else.
    others = [await RawPublisher.open(r) for r in redis_nodes]
    codec = BusCodec()
    try:
        for i in range(ROUNDS):
            # a namespace b never listened to, then one b has just left (its UNSUBSCRIBE may
            # still be in flight when the join subscribes again)
            namespace = f"ns{i}" if i % 2 == 0 else f"ns{i - 1}"
            await b.server.join_room_confirmed(namespace, "r", "m")
            frame = f'{{"event":"tick","payload":{i}}}'
            envelope = env.room(frame, namespace, "r", "elsewhere", [], None)
            await others[i % 2].publish(f"ws:{namespace}".encode(), codec.dumps(envelope))
            a.server.broadcast_to_room(namespace, "r", "tock", i)  # and from a wsfleet node
            assert await member.recv() == frame
            assert await member.recv() == f'{{"event":"tock","payload":{i}}}'
            b.server.leave_room(namespace, "r", "m")
            for _ in range(3):  # let b's subscriber write the UNSUBSCRIBE
                await asyncio.sleep(0)
    finally:
        for other in others:
            other.close()


async def test_the_join_is_done_at_once_when_nothing_is_to_confirm(
    redis_factory: Callable[[], Awaitable[RedisProcess]], make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([await redis_factory()], 1)
    await join(connect, a, "s1")
    await join(connect, a, "s2")
    await a.server.join_room_confirmed("game", "r1", "s1")
    assert a.server.get_room_socket_ids("game", "r1") == {"s1"}
    # already confirmed: no wait (a zero timeout would raise if it had to wait)
    await a.server.join_room_confirmed("game", "r2", "s2", timeout=0)
    assert a.server.is_joined_room("s2", "game", "r2")


async def test_a_single_node_join_needs_no_redis(start_server, connect: Connect) -> None:  # type: ignore[no-untyped-def]
    def setup(server) -> None:  # type: ignore[no-untyped-def]
        server.on_system("connection", lambda s: server.set_user_socket("s", s))

    running = await start_server(setup=setup)
    client = await connect(running.url())
    await client.send("")
    assert await client.recv() == ""
    await running.server.join_room_confirmed("game", "r", "s", timeout=0)
    assert running.server.get_room_socket_ids("game") == {"s"}
