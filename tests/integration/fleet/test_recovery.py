"""Connection state recovery on real redis-servers, nodes in this process: a client that loses
its node reconnects to another one and gets every room and direct message exactly once, in
order; a client whose history is gone is told it was not recovered."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.redis_procs import RedisProcess
from tests.switch import Switch

from wsfleet.client import Connector
from wsfleet.client.recovery import RecoveryInfo
from wsfleet.server import HistoryLostError, ServerSettings

RECOVERY = ServerSettings(recovery=True, recovery_session_ttl=30.0)
CLIENT = {"fast_reconnect_interval": 0.05, "close_timeout": 0.5, "connect_timeout": 2.0}


class Recorder:
    """A recovering client counting what it receives per stream."""

    def __init__(self, url: str, **options: Any) -> None:
        self.client = Connector(url, recover=True, **{**CLIENT, **options})
        self.room: list[int] = []
        self.direct: list[int] = []
        self.recoveries: list[RecoveryInfo] = []
        self.opened = 0
        self.client.on_event("tick", lambda p: self.room.append(p["n"]))
        self.client.on_event("dm", lambda p: self.direct.append(p["n"]))
        self.client.on("recovery", self.recoveries.append)
        self.client.on("open", self._open)

    def _open(self) -> None:
        self.opened += 1


def app(node: Node) -> None:
    server = node.server

    @server.on_system("connection")
    def joined(socket: Any) -> None:
        if socket.id is not None:
            server.join_room("feed", "main", socket.id)


class Publisher:
    """Sends numbered room and direct messages from a node of the fleet until stopped."""

    def __init__(self, node: Node, socket_id: str, interval: float = 0.002) -> None:
        self.node, self.socket_id, self.interval = node, socket_id, interval
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        server = self.node.server
        while True:
            server.broadcast_to_room("feed", "main", "tick", {"n": self.sent})
            server.to_socket_id(self.socket_id, "dm", {"n": self.sent})
            self.sent += 1
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.node.server.fleet.flush(5.0)  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def _recorder(url: str, **options: Any) -> AsyncIterator[Recorder]:
    recorder = Recorder(url, **options)
    try:
        yield recorder
    finally:
        await asyncio.wait_for(recorder.client.aclose(), 5.0)


async def _marked(node: Node) -> None:
    """Wait until the session's marks are written (its streams as they were at the start)."""
    recovery = node.server.recovery
    assert recovery is not None
    await wait_until(lambda: recovery.pending_marks == 0)


async def _exactly_once(recorder: Recorder, publisher: Publisher) -> None:
    await publisher.stop()
    total = publisher.sent
    await wait_until(lambda: len(recorder.room) >= total and len(recorder.direct) >= total, 10)
    assert recorder.room == list(range(total))
    assert recorder.direct == list(range(total))


@pytest.mark.parametrize("how", ["server-close", "network-cut"])
async def test_a_client_moved_to_another_node_misses_nothing(
    redis: RedisProcess, make_fleet: MakeFleet, switch: Any, how: str
) -> None:
    nodes = await make_fleet([redis], 3, settings=RECOVERY)
    await moved_misses_nothing(nodes, switch, "c1", how)


async def moved_misses_nothing(nodes: list[Node], switch: Any, socket_id: str, how: str) -> None:
    """A recovering client on the first node, moved to the second (``how``: server-close or
    network-cut) while the third streams room and direct messages: each arrives once, in order."""
    a, b, source = nodes
    for node in (a, b):
        app(node)
    s: Switch = await switch(a.port)
    async with _recorder(s.url(f"id={socket_id}")) as recorder:
        await recorder.client.connect()
        await wait_until(lambda: a.server.is_joined_room(socket_id, "feed", "main"))
        await _marked(a)
        publisher = Publisher(source, socket_id)
        publisher.start()
        await wait_until(lambda: len(recorder.room) > 20 and len(recorder.direct) > 20)
        s.target = b.port
        if how == "server-close":
            socket = a.server.get_socket(socket_id)
            assert socket is not None
            socket.close(1012, "moving")
        else:
            s.cut()
        await wait_until(lambda: len(recorder.recoveries) == 1, 10)
        assert recorder.recoveries[0].recovered, recorder.recoveries[0]
        assert b.server.is_joined_room(socket_id, "feed", "main")
        count = len(recorder.room)
        await wait_until(lambda: len(recorder.room) > count + 20)
        await _exactly_once(recorder, publisher)


async def test_history_trimmed_means_not_recovered(
    redis: RedisProcess, make_fleet: MakeFleet, switch: Any
) -> None:
    small = ServerSettings(recovery=True, recovery_history_size=10)
    a, b, source = await make_fleet([redis], 3, settings=small)
    app(a)
    s: Switch = await switch(a.port)
    async with _recorder(s.url("id=c2"), fast_reconnect_interval=0.5) as recorder:
        await recorder.client.connect()
        await wait_until(lambda: a.server.is_joined_room("c2", "feed", "main"))
        await _marked(a)
        source.server.broadcast_to_room("feed", "main", "tick", {"n": 0})
        await wait_until(lambda: recorder.room == [0])
        s.target = b.port
        socket = a.server.get_socket("c2")
        assert socket is not None
        socket.close(1012, "moving")
        for n in range(1, 400):  # far beyond MAXLEN ~ 10 (trimmed by whole stream nodes)
            source.server.broadcast_to_room("feed", "main", "tick", {"n": n})
        await wait_until(lambda: len(recorder.recoveries) == 1, 10)
        info = recorder.recoveries[0]
        assert not info.recovered
        assert info.reason == "position not in history"


async def test_redis_restart_means_not_recovered(
    redis: RedisProcess, make_fleet: MakeFleet, switch: Any
) -> None:
    a, b = await make_fleet([redis], 2, settings=RECOVERY)
    app(a)
    s: Switch = await switch(a.port)
    async with _recorder(s.url("id=c3"), fast_reconnect_interval=0.3) as recorder:
        await recorder.client.connect()
        await wait_until(lambda: a.server.is_joined_room("c3", "feed", "main"))
        await _marked(a)
        a.server.broadcast_to_room("feed", "main", "tick", {"n": 0})
        await wait_until(lambda: recorder.room == [0])
        await redis.restart()  # no persistence: every stream, epoch and session is gone
        s.target = b.port
        a.server.get_socket("c3").close(1012, "moving")  # type: ignore[union-attr]
        await wait_until(lambda: len(recorder.recoveries) >= 1, 15)
        assert not recorder.recoveries[-1].recovered


async def test_the_original_client_is_unchanged_on_a_recovery_node(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1, settings=RECOVERY)
    app(a)
    raw = await connect(a.url("id=plain"))
    await wait_until(lambda: a.server.is_joined_room("plain", "feed", "main"))
    a.server.broadcast_to_room("feed", "main", "tick", {"n": 1})
    a.server.to_socket_id("plain", "dm", {"n": 2})
    assert await raw.recv() == '{"event":"tick","payload":{"n":1}}'
    assert await raw.recv() == '{"event":"dm","payload":{"n":2}}'


@pytest.mark.parametrize(("seed", "redis_nodes"), [(1, 1), (2, 1), (3, 1), (4, 2)])
async def test_the_seam_between_replay_and_live_under_a_continuous_stream(
    redis_factory: Any, make_fleet: MakeFleet, switch: Any, seed: int, redis_nodes: int
) -> None:
    """Twenty moves between two nodes, each after a random number of new messages (0 included:
    a reconnect right after a restore), by server close or network cut, while a third node
    streams room and direct messages every 2 ms: every message arrives once, in order (also
    over two Redis nodes, where each stream lives on its target's node)."""
    redis = [await redis_factory() for _ in range(redis_nodes)]
    nodes = await make_fleet(redis, 3, settings=RECOVERY)
    await twenty_moves(nodes, switch, random.Random(seed))


async def twenty_moves(nodes: list[Node], switch: Any, rng: random.Random) -> None:
    """The seam test's moves (see its docstring) on the fleet of ``nodes`` (two and a source)."""
    a, b, source = nodes
    for node in (a, b):
        app(node)
    s: Switch = await switch(a.port)
    async with _recorder(s.url("id=seam"), fast_reconnect_interval=0.01) as recorder:
        await recorder.client.connect()
        await wait_until(lambda: recorder.client.recovery_session is not None)
        publisher = Publisher(source, "seam")
        publisher.start()
        current, other = a, b
        resumes = 0
        for _ in range(20):
            wanted = len(recorder.room) + rng.randrange(0, 8)
            await wait_until(lambda w=wanted: len(recorder.room) >= w)
            s.target = other.port
            if rng.random() < 0.5:
                socket = current.server.get_socket("seam")
                if socket is not None:
                    socket.close(1012, "moving")
            else:
                s.cut()
            # at least one resume: a late duplicate-login notice of an earlier move can close
            # the new socket once more (the client then resumes again)
            await wait_until(lambda n=resumes: len(recorder.recoveries) > n, 10)
            resumes = len(recorder.recoveries)
            assert all(info.recovered for info in recorder.recoveries), recorder.recoveries
            current, other = other, current
        await _exactly_once(recorder, publisher)


async def test_room_history_gives_the_last_messages_or_those_after_a_position(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b = await make_fleet([redis], 2, settings=RECOVERY)
    for n in range(5):
        a.server.broadcast_to_room("feed", "hist", "tick", {"n": n})
    await a.server.fleet.flush(5.0)  # type: ignore[union-attr]
    last = await b.server.room_history("feed", "hist", limit=3)
    assert [(e.event, e.payload) for e in last.entries] == [("tick", {"n": n}) for n in (2, 3, 4)]
    assert last.epoch is not None
    after = await b.server.room_history("feed", "hist", since=last.entries[0].position)
    assert [e.payload["n"] for e in after.entries] == [3, 4]
    assert (await b.server.room_history("feed", "empty")).entries == []
    with pytest.raises(HistoryLostError):
        await b.server.room_history("feed", "hist", since="rdddf1a28a503f36c/abc.1")


async def test_broadcast_frames_are_stamped_for_recovering_sockets_only(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    """A node whose sockets all recover sends them the stamped broadcast without looking each up;
    as soon as one plain socket is there, that one gets the unchanged frame."""
    (node,) = await make_fleet([redis], 1, settings=RECOVERY)
    news: list[Any] = []
    async with _recorder(node.url("id=rc")) as recorder:
        recorder.client.on_event("news", news.append)
        await recorder.client.connect()
        await wait_until(lambda: recorder.client.recovery_session is not None)
        positions = recorder.client._sup.recovery.positions  # type: ignore[union-attr]
        node.server.broadcast("news", {"n": 1})
        await wait_until(lambda: news == [{"n": 1}])
        first = positions.get("b")
        assert first is not None  # the frame carried its position
        plain = await connect(node.url("id=plain"))
        await plain.send("")
        assert await plain.recv() == ""
        node.server.broadcast("news", {"n": 2})
        assert await plain.recv() == '{"event":"news","payload":{"n":2}}'
        await wait_until(lambda: news == [{"n": 1}, {"n": 2}])
        assert positions.get("b") not in (None, first)
        await plain.ws.close()
        await wait_until(lambda: node.server.socket_count == 1)
        node.server.broadcast("news", {"n": 3})
        await wait_until(lambda: len(news) == 3)
        assert positions.get("b") not in (None, first)
