"""Issue 13 on the bus, against bytes captured from the stand-in original node
(tests/fixtures/original_bus) and against the stand-in itself: ``to_socket_ids`` envelopes,
replies naming their caller, and a room join that can be awaited until Redis confirmed it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.conftest import WAIT, Connect, wait_until
from tests.fixtures.original_bus import captured
from tests.integration.fleet import test_original_interop as interop
from tests.integration.fleet.conftest import MakeFleet, Node, join
from tests.integration.fleet.test_original_interop import StartOriginal
from tests.redis_procs import RedisProcess

from wsfleet.bus import envelopes as env
from wsfleet.bus.codec import BusCodec, Serialization

pytestmark = pytest.mark.integration

# the stand-in original node's fixtures
original_node_ready = interop.original_node_ready
start_original = interop.start_original


class BusTap:
    """Every message published on one Redis node, in order (``PSUBSCRIBE *``)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub()
        self.seen: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.psubscribe("*")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "pmessage":
                self.seen.append((message["channel"].decode(), message["data"]))
                self._changed.set()

    async def wait_for(
        self, predicate: Callable[[str, bytes], bool], *, after: int = 0, timeout: float = WAIT
    ) -> int:
        """Index of the first message from index ``after`` on (seen or to come) that matches."""
        async with asyncio.timeout(timeout):
            start = after
            while True:
                for i in range(start, len(self.seen)):
                    if predicate(*self.seen[i]):
                        return i
                start = len(self.seen)
                self._changed.clear()
                await self._changed.wait()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.pubsub.aclose()
        await self.client.aclose()


@pytest.fixture
async def tap(redis: RedisProcess) -> AsyncIterator[BusTap]:
    bus_tap = BusTap(aioredis.Redis(host="127.0.0.1", port=redis.port))
    await bus_tap.start()
    yield bus_tap
    await bus_tap.aclose()


def without_wsf(mode: Serialization, data: bytes) -> bytes:
    """wsfleet's envelope as an original node's: the trailing ``wsf`` entry removed."""
    if mode is Serialization.JSON:
        return data[: data.rindex(b',"wsf":')] + b"}"
    assert 0x81 <= data[0] <= 0x8F
    return bytes([data[0] - 1]) + data[1 : data.rindex(b"\xa3wsf")]


def encoded(codec: BusCodec, value: Any) -> bytes:
    data = codec.dumps({"k": value})
    return data[5:-1] if codec.mode is Serialization.JSON else data[3:]


def as_sent_by(codec: BusCodec, original: bytes, name: str) -> bytes:
    """A captured envelope of the original node ``orig1``, as if ``name`` had sent it."""
    return original.replace(encoded(codec, "orig1"), encoded(codec, name))


async def located(node: Node, *socket_ids: str) -> None:
    """Wait until the socket directory says ``node`` holds each id."""
    directory = node.server.fleet.directory  # type: ignore[union-attr]
    async with asyncio.timeout(WAIT):
        for socket_id in socket_ids:
            while await directory.locate(socket_id) != node.name:
                await asyncio.sleep(0.01)


@pytest.mark.parametrize("mode", list(Serialization))
async def test_to_socket_ids_sends_one_envelope_per_owner_and_one_d_for_the_rest(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, tap: BusTap, mode: Serialization
) -> None:
    a, b = await make_fleet([redis], 2, serialization=mode.value)
    a1, b1, b2 = [await join(connect, node, sid) for node, sid in ((a, "a1"), (b, "b1"), (b, "b2"))]
    codec = BusCodec(mode)
    inbox_b = f"csbp:wsfleet:node:{b.name}"
    await located(b, "b1", "b2")
    start = len(tap.seen)
    assert a.server.to_socket_ids(["b1", "u1", "a1", "b2", "u2"], "m", {"n": 1}) == 1  # a1
    frame = '{"event":"m","payload":{"n":1}}'
    for client in (a1, b1, b2):
        assert await client.recv() == frame
    shared = await tap.wait_for(lambda ch, _: ch == "ws:private_socket")
    a.server.broadcast("mark", 0)  # published after: once the tap has it, it has all before
    end = await tap.wait_for(lambda ch, _: ch == "ws:broadcast")
    direct = [(c, data) for c, data in tap.seen[start:end] if c in (inbox_b, "ws:private_socket")]
    # two messages, not one per id: b's ids to b's inbox, the unknown ids in one (d)
    assert sorted(ch for ch, _ in direct) == sorted([inbox_b, "ws:private_socket"])
    inbox = codec.loads(next(data for ch, data in direct if ch == inbox_b))
    assert inbox["socketIds"] == ["b1", "b2"] and inbox["data"] == frame
    # the (d) is byte for byte what the original's toSocketIds publishes (captured), but for
    # the sender's name and wsfleet's own ``wsf`` key
    _, original = captured(mode.value, "to_socket_ids_two")
    assert without_wsf(mode, tap.seen[shared][1]) == as_sent_by(codec, original, a.name)


@pytest.mark.parametrize("mode", list(Serialization))
async def test_one_unknown_id_is_a_d_too_and_to_socket_id_stays_c(
    redis: RedisProcess, make_fleet: MakeFleet, tap: BusTap, mode: Serialization
) -> None:
    (a,) = await make_fleet([redis], 1, serialization=mode.value)
    codec = BusCodec(mode)
    a.server.to_socket_ids(["u1"], "m", {"n": 1})
    first = await tap.wait_for(lambda ch, _: ch == "ws:private_socket")
    a.server.to_socket_id("u1", "m", 1)
    second = await tap.wait_for(lambda ch, _: ch == "ws:private_socket", after=first + 1)
    for index, name in ((first, "to_socket_ids_one"), (second, "to_socket_id")):
        _, original = captured(mode.value, name)
        assert without_wsf(mode, tap.seen[index][1]) == as_sent_by(codec, original, a.name)


@pytest.mark.parametrize("mode", list(Serialization))
async def test_replies_to_an_original_caller_name_it_in_target_server(
    redis: RedisProcess,
    make_fleet: MakeFleet,
    tap: BusTap,
    start_original: StartOriginal,
    mode: Serialization,
) -> None:
    (a,) = await make_fleet([redis], 1, serialization=mode.value)
    codec = BusCodec(mode)

    @a.server.on_cross_server_event("ask")
    def ask(data: dict[str, Any], reply: Any) -> Any:
        return {"s": "\ud800x", "ok": True}

    orig = await start_original(redis, json_mode=mode is Serialization.JSON)
    options = {"timeout": 3000}
    cid = await orig.call("emitCrossServer", event="ask", payload={"q": 1}, options=options)
    (result,) = await orig.callbacks(cid, 1)
    assert result["success"] is True and result["data"]["senderServer"] == a.name
    assert result["data"]["targetServer"] == ["orig1"]
    callback_id = result["data"]["callbackId"]
    index = await tap.wait_for(
        lambda ch, data: ch == "csbp:server_bridge" and codec.loads(data)["data"].get("isCallback")
    )
    # the original's reply (b) as captured, with its sender, id and payload, names the caller
    _, original = captured(mode.value, "reply")
    expected = as_sent_by(codec, original, a.name).replace(
        encoded(codec, "node1-mx0001-abcd-1"), encoded(codec, callback_id)
    )
    expected = (
        expected.replace(
            encoded(codec, "targetServer") + encoded(codec, []),
            encoded(codec, "targetServer") + encoded(codec, ["orig1"]),
        )
        if mode is Serialization.MSGPACK
        else expected.replace(b'"targetServer":[]', b'"targetServer":["orig1"]')
    )
    assert without_wsf(mode, tap.seen[index][1]) == expected


async def test_a_reply_naming_another_caller_is_ignored(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    (a,) = await make_fleet([redis], 1)
    results: list[dict[str, Any]] = []
    got = asyncio.Event()

    def callback(result: dict[str, Any]) -> None:
        results.append(result)
        got.set()

    callback_id = a.server.emit_cross_server(
        "ask", 1, callback, target_server="orig1", timeout=WAIT
    )
    assert callback_id is not None
    codec = BusCodec()
    publisher = aioredis.Redis(host="127.0.0.1", port=redis.port)
    try:
        # the same callback id, addressed to another caller: not ours, although the id matches
        for target in ("someone-else", a.name):
            reply = env.reply("orig1", callback_id, target, None, target)
            assert await publisher.publish("csbp:server_bridge", codec.dumps(reply)) >= 1
        async with asyncio.timeout(WAIT):
            await got.wait()
    finally:
        await publisher.aclose()
    assert [r["data"]["payload"] for r in results] == [a.name]
    assert results[0]["data"]["targetServer"] == [a.name]


async def test_to_socket_ids_over_several_redis_nodes_reaches_each_socket_once(
    redis_factory: Callable[[], Awaitable[RedisProcess]], make_fleet: MakeFleet, connect: Connect
) -> None:
    redis_nodes = [await redis_factory(), await redis_factory()]
    taps = [BusTap(aioredis.Redis(host="127.0.0.1", port=r.port)) for r in redis_nodes]
    for bus_tap in taps:
        await bus_tap.start()
    try:
        a, b = await make_fleet(redis_nodes, 2)
        ids = [f"b{i}" for i in range(8)]
        clients = [await join(connect, b, sid) for sid in ids]
        await located(b, *ids)
        unknown = [f"u{i}" for i in range(6)]
        starts = [len(t.seen) for t in taps]
        assert a.server.to_socket_ids(ids + unknown, "m", 1) == 0
        for client in clients:
            assert await client.recv() == '{"event":"m","payload":1}'
        a.server.broadcast("mark", 0)
        for client in clients:  # nothing twice: the next frame is the marker
            assert await client.recv() == '{"event":"mark","payload":0}'
        codec = BusCodec()
        direct = (f"csbp:wsfleet:node:{b.name}", "ws:private_socket")

        def sent() -> list[tuple[str, list[str]]]:
            return [
                (channel, codec.loads(data)["socketIds"])
                for bus_tap, start in zip(taps, starts, strict=True)
                for channel, data in bus_tap.seen[start:]
                if channel in direct
            ]

        # each script publishes all its messages at once: when every id was seen, all were
        await wait_until(lambda: {i for _, group in sent() for i in group} == {*ids, *unknown})
        sent_now = sent()
        # at most one message per (Redis node, destination), each id in exactly one of them
        assert len(sent_now) <= 2 * len(redis_nodes)
        assert sorted(i for _, group in sent_now for i in group) == sorted(ids + unknown)
        for channel, group in sent_now:
            assert set(group) <= (set(ids) if channel.startswith("csbp:") else set(unknown))
    finally:
        for bus_tap in taps:
            await bus_tap.aclose()
