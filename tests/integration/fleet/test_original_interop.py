"""wsfleet and an original ``websocket-cross-server-adapter`` 1.0.7 node on one Redis bus.

The original node is ``tests/interop/original-node/node.mjs``: a Node.js stand-in written from
the description of the original's bus code (notepack.io 3.0.1, ioredis 5.6.1). Its "sockets" are
fake; a frame sent to one shows up as a ``{"deliver": id, "frame": text}`` line on its stdout.
Every check waits on a frame or a stdout line, with a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import WAIT, Connect, RawClient
from tests.integration.fleet.conftest import MakeFleet, Node, join
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.integration

ORIGINAL_DIR = Path(__file__).resolve().parents[2] / "interop" / "original-node"
REPLY_KEYS = ["event", "senderServer", "targetServer", "callbackId", "isCallback", "payload"]
REQUEST_KEYS = ["event", "senderServer", "payload", "targetServer", "callbackId"]


def frame(event: str, payload: Any) -> str:
    return json.dumps(
        {"event": event, "payload": payload}, separators=(",", ":"), ensure_ascii=False
    )


@pytest.fixture(scope="session")
def original_node_ready() -> Path:
    """node and npm on PATH, and the pinned dependencies installed (``npm ci``) once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(
            "The original-framework interop test needs Node.js 18+ and npm on PATH "
            "(e.g. apt-get install nodejs npm).",
            pytrace=False,
        )
    if not (ORIGINAL_DIR / "node_modules" / "notepack.io").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=ORIGINAL_DIR,
            check=True,
            timeout=300,
        )
    return ORIGINAL_DIR


class OriginalNode:
    """Drives node.mjs through stdin and collects its stdout JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(json.loads(line))
            self._changed.set()
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The first stdout line (seen so far or still to come) that matches."""
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.lines[seen:]:
                        if predicate(line):
                            return line
                    seen = len(self.lines)
                    self._changed.clear()
                    if self.proc.stdout is not None and self.proc.stdout.at_eof():
                        raise TimeoutError
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"original node: no matching stdout line; got {self.lines[-20:]}; "
                f"stderr: {self.stderr.read_text()[-2000:]}"
            ) from None

    async def call(self, cmd: str, **fields: Any) -> int:
        """Send one command and wait for its ``ok``; returns the command id."""
        assert self.proc.stdin is not None
        cid = next(self._ids)
        self.proc.stdin.write(json.dumps({"id": cid, "cmd": cmd, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        answer = await self.wait_for(lambda m: m.get("id") == cid and ("ok" in m or "error" in m))
        assert answer.get("ok") is True, answer
        return cid

    def delivered(self, socket_id: str) -> list[str]:
        return [m["frame"] for m in self.lines if m.get("deliver") == socket_id]

    async def received(self, socket_id: str, text: str) -> None:
        await self.wait_for(lambda m: m.get("deliver") == socket_id and m.get("frame") == text)

    async def callbacks(self, cid: int, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The first ``count`` callback results of the emitCrossServer command ``cid``."""
        await self.wait_for(
            lambda _: (
                len([m for m in self.lines if m.get("id") == cid and "callback" in m]) >= count
            ),
            timeout,
        )
        return [m["callback"] for m in self.lines if m.get("id") == cid and "callback" in m]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader


StartOriginal = Callable[..., Awaitable[OriginalNode]]


@pytest.fixture
async def start_original(original_node_ready: Path, tmp_path: Path) -> AsyncIterator[StartOriginal]:
    started: list[OriginalNode] = []

    async def start(
        redis: RedisProcess, name: str = "orig1", *, json_mode: bool = False
    ) -> OriginalNode:
        stderr = tmp_path / f"{name}.stderr"
        cmd = ["node", str(original_node_ready / "node.mjs"), "--redis", redis.address]
        cmd += ["--name", name] + (["--json"] if json_mode else [])
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err
            )
        node = OriginalNode(proc, stderr)
        started.append(node)
        await node.wait_for(lambda m: m.get("ready") is True, timeout=10)
        return node

    yield start
    for node in started:
        await node.stop()


async def wait_numsub(redis: RedisProcess, channel: str, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while await redis.numsub(channel) < count:
            await asyncio.sleep(0.01)


def answer_with_name(node: Node, seen: list[dict[str, Any]]) -> None:
    @node.server.on_cross_server_event("ask")
    def ask(data: dict[str, Any], reply: Any) -> Any:
        seen.append(data)
        return {"answer": node.name, "q": data["payload"]}


async def fleet_with_clients(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, **fleet: Any
) -> tuple[Node, Node, RawClient, RawClient]:
    a, b = await make_fleet([redis], 2, **fleet)
    return a, b, await join(connect, a, "a1"), await join(connect, b, "b1")


async def test_broadcast_both_ways(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, start_original: StartOriginal
) -> None:
    a, _b, a1, b1 = await fleet_with_clients(redis, make_fleet, connect)
    orig = await start_original(redis)
    for sid in ("o1", "o2"):
        await orig.call("register", socketId=sid)

    # original -> wsfleet: envelope (e) on ws:broadcast, the frame is passed on unchanged
    await orig.call("broadcast", event="news", payload={"from": "orig", "n": [1, 2.5, None]})
    sent = '{"event":"news","payload":{"from":"orig","n":[1,2.5,null]}}'
    assert await a1.recv() == sent
    assert await b1.recv() == sent

    # wsfleet -> original
    a.server.broadcast("flash", {"from": a.name, "text": "héllo"})
    back = frame("flash", {"from": a.name, "text": "héllo"})
    await orig.received("o1", back)
    await orig.received("o2", back)
    assert await b1.recv() == back
    # the original's own publish came back to it only once (self-echo suppression, §5.5)
    assert orig.delivered("o1") == [sent, back]
    assert orig.delivered("o2") == [sent, back]


async def test_direct_messages_both_ways(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, start_original: StartOriginal
) -> None:
    a, _b, a1, b1 = await fleet_with_clients(redis, make_fleet, connect)
    orig = await start_original(redis)
    for sid in ("o1", "o2"):
        await orig.call("register", socketId=sid)

    # original -> wsfleet: (c) and (d) on ws:private_socket
    await orig.call("toSocketId", socketId="b1", event="dm", payload=1)
    assert await b1.recv() == frame("dm", 1)
    await orig.call("toSocketIds", socketIds=["a1", "b1", "o1"], event="multi", payload=[2])
    assert await a1.recv() == frame("multi", [2])
    assert await b1.recv() == frame("multi", [2])
    assert orig.delivered("o1") == [frame("multi", [2])]  # local, and not echoed

    # wsfleet -> original: the original keeps no location record, so the shared channel
    assert a.server.to_socket_id("o1", "dm", {"to": "o1"})
    await orig.received("o1", frame("dm", {"to": "o1"}))
    assert a.server.to_socket_ids(["o2", "b1"], "multi", 3) == 0
    await orig.received("o2", frame("multi", 3))
    assert await b1.recv() == frame("multi", 3)
    assert orig.delivered("o1") == [frame("multi", [2]), frame("dm", {"to": "o1"})]
    assert orig.delivered("o2") == [frame("multi", 3)]


async def test_room_broadcast_both_ways(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, start_original: StartOriginal
) -> None:
    a, b, a1, b1 = await fleet_with_clients(redis, make_fleet, connect)
    b2 = await join(connect, b, "b2")
    a.server.join_room("game", "r1", "a1")
    b.server.join_room("game", "r2", "b1")
    b.server.join_room("game", "r1", "b2")
    orig = await start_original(redis)
    for sid, room in (("o1", "r1"), ("o2", "r2"), ("o3", "r1")):
        await orig.call("register", socketId=sid)
        await orig.call("join", ns="game", roomId=room, socketId=sid)
    await wait_numsub(redis, "ws:game", 3)  # a, b and the original listen on ws:game

    # original -> wsfleet: (f) on ws:game, for room r1 minus b2
    await orig.call(
        "broadcastToRoom", ns="game", roomId="r1", event="turn", payload=1, excludeSocketIds=["b2"]
    )
    assert await a1.recv() == frame("turn", 1)

    # wsfleet -> original: r1 minus o3
    b.server.broadcast_to_room("game", "r1", "turn", 2, exclude=["o3"])
    assert await b2.recv() == frame("turn", 2)
    assert await a1.recv() == frame("turn", 2)
    await orig.received("o1", frame("turn", 2))
    assert orig.delivered("o1") == [frame("turn", 1), frame("turn", 2)]
    assert orig.delivered("o2") == []  # other room
    assert orig.delivered("o3") == [frame("turn", 1)]  # excluded from the second one

    # b1 (room r2) and b2 (excluded) got nothing else: their next frame is this marker
    await orig.call("broadcast", event="mark", payload=0)
    assert await b1.recv() == frame("mark", 0)
    assert await b2.recv() == frame("mark", 0)


async def cross_server_both_ways(a: Node, b: Node, orig: OriginalNode) -> None:
    seen: list[dict[str, Any]] = []
    answer_with_name(a, seen)
    answer_with_name(b, seen)
    await orig.call("listen", event="ping-orig", reply={"pong": "orig1", "list": [1, "x"]})

    # original emitCrossServer, broadcast with expectedResponses=2 -> one reply from each node
    cid = await orig.call(
        "emitCrossServer",
        event="ask",
        payload={"q": 1},
        options={"expectedResponses": 2, "timeout": 3000},
    )
    results = await orig.callbacks(cid, 2)
    assert [r["success"] for r in results] == [True, True]
    assert [r["remainingResponses"] for r in results] == [1, 0]
    assert {r["data"]["senderServer"] for r in results} == {a.name, b.name}
    callback_id = results[0]["data"]["callbackId"]
    assert re.fullmatch(r"orig1-[0-9a-z]+-[0-9a-z]{4}-[0-9a-z]+", callback_id)
    for r in results:
        data = r["data"]
        assert list(data) == REPLY_KEYS, data  # the original's envelope (b), in its key order
        assert data["event"] == "_Cs_Cb_" and data["isCallback"] is True
        assert data["targetServer"] == ["orig1"] and data["callbackId"] == callback_id
        assert data["payload"] == {"answer": data["senderServer"], "q": {"q": 1}}
    # wsfleet listeners got the whole envelope (a), as original listeners do
    assert len(seen) == 2
    assert [list(d) for d in seen] == [REQUEST_KEYS, REQUEST_KEYS]
    assert {d["senderServer"] for d in seen} == {"orig1"}
    assert all(d["targetServer"] == [] and d["callbackId"] == callback_id for d in seen)

    # wsfleet -> original, targeted: the reply comes back on the bridge with targetServer []
    result = await a.server.emit_cross_server_async("ping-orig", {"x": 1}, target_server="orig1")
    assert result.success
    assert result.payloads == {"orig1": {"pong": "orig1", "list": [1, "x"]}}
    assert list(result.responses["orig1"]) == REPLY_KEYS
    request = await orig.wait_for(lambda m: m.get("crossEvent", {}).get("senderServer") == a.name)
    assert request["crossEvent"]["targetServer"] == ["orig1"]
    assert request["crossEvent"]["callbackId"] == result.callback_id

    # wsfleet -> original, broadcast, original promise shape
    promised = await b.server.emit_cross_server_with_promise(
        "ping-orig", 2, exclude_self=True, timeout=3
    )
    assert promised["success"] is True
    assert set(promised["responses"]) == {"orig1"}
    assert promised["responses"]["orig1"]["payload"] == {"pong": "orig1", "list": [1, "x"]}


async def test_cross_server_events_with_replies_both_ways(
    redis: RedisProcess, make_fleet: MakeFleet, start_original: StartOriginal
) -> None:
    a, b = await make_fleet([redis], 2)
    orig = await start_original(redis)
    await cross_server_both_ways(a, b, orig)


async def test_json_serialization_on_both_sides(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, start_original: StartOriginal
) -> None:
    a, b, a1, b1 = await fleet_with_clients(redis, make_fleet, connect, serialization="json")
    orig = await start_original(redis, json_mode=True)
    await orig.call("register", socketId="o1")

    await orig.call("broadcast", event="news", payload={"json": True})
    assert await a1.recv() == frame("news", {"json": True})
    assert await b1.recv() == frame("news", {"json": True})
    b.server.broadcast("news", "from b")
    await orig.received("o1", frame("news", "from b"))
    assert await a1.recv() == frame("news", "from b")
    assert await b1.recv() == frame("news", "from b")

    await orig.call("toSocketId", socketId="a1", event="dm", payload=1)
    assert await a1.recv() == frame("dm", 1)
    assert a.server.to_socket_id("o1", "dm", 2)
    await orig.received("o1", frame("dm", 2))

    await cross_server_both_ways(a, b, orig)
    assert not [m for m in orig.lines if "error" in m], orig.lines
