"""Capture what the stand-in original node (original-node/node.mjs: notepack.io 3.0.1, ioredis)
publishes, into ``tests/fixtures/original_bus.json``; the wire tests compare wsfleet's bytes
against these. Run once by hand, from the repository root, after ``make interop-deps``:

    .venv/bin/python -m tests.interop.capture_original_bus

Every message published on a fresh redis-server is recorded by a ``PSUBSCRIBE *`` connection.
The original node is driven through stdin; a request to it is published by this script as a
wsfleet node named ``node1`` would (its key order, no ``wsf`` key), so the node answers with (b).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from tests.redis_procs import RedisProcess, free_port

from wsfleet.bus.codec import BusCodec, Serialization

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "fixtures" / "original_bus.json"
LONE = {"hi": "\ud800x", "end": "a\ud800", "lo": "\udc00x", "before2": "\ud800é"}
LONG = "\ud800" + "y" * 32
CALLBACK_ID = "node1-mx0001-abcd-1"


async def capture(mode: Serialization) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(free_port(), Path(tmp))
        await server.start()
        try:
            return await _capture(server, mode)
        finally:
            await server.kill()


async def _capture(server: RedisProcess, mode: Serialization) -> dict[str, Any]:
    sub = aioredis.Redis(host="127.0.0.1", port=server.port)
    pubsub = sub.pubsub()
    await pubsub.psubscribe("*")
    argv = ["node", str(HERE / "original-node" / "node.mjs"), "--redis", server.address]
    argv += ["--name", "orig1"] + (["--json"] if mode is Serialization.JSON else [])
    node = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert node.stdin is not None and node.stdout is not None
    lines: list[dict[str, Any]] = []

    async def until(predicate: Any) -> dict[str, Any]:
        assert node.stdout is not None
        for line in lines:
            if predicate(line):
                return line
        while True:
            line = json.loads(await node.stdout.readline())
            lines.append(line)
            if predicate(line):
                return line

    async def cmd(n: int, **fields: Any) -> None:
        assert node.stdin is not None
        node.stdin.write(json.dumps({"id": n, **fields}).encode() + b"\n")
        await node.stdin.drain()
        await until(lambda m: m.get("id") == n and ("ok" in m or "error" in m))

    async def next_message() -> tuple[str, bytes]:
        while True:
            got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if got is not None:
                return got["channel"].decode(), got["data"]

    await until(lambda m: m.get("ready"))
    captured: dict[str, Any] = {}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("request_lone_surrogates", {"cmd": "emitCrossServer", "event": "ask", "payload": LONE}),
        ("request_long_lone", {"cmd": "emitCrossServer", "event": "ask", "payload": {"s": LONG}}),
        ("broadcast_lone", {"cmd": "broadcast", "event": "news", "payload": {"s": "\ud800x"}}),
        ("to_socket_ids_two", {"cmd": "toSocketIds", "socketIds": ["u1", "u2"], "event": "m"}),
        ("to_socket_ids_one", {"cmd": "toSocketIds", "socketIds": ["u1"], "event": "m"}),
        ("to_socket_id", {"cmd": "toSocketId", "socketId": "u1", "event": "m", "payload": 1}),
        (
            "room",
            {
                "cmd": "broadcastToRoom",
                "ns": "game",
                "roomId": "r1",
                "event": "turn",
                "payload": {"n": 1},
                "excludeSocketIds": ["u3"],
            },
        ),
    ]
    steps[3][1]["payload"] = steps[4][1]["payload"] = {"n": 1}
    for n, (name, fields) in enumerate(steps, start=1):
        await cmd(n, **fields)
        channel, data = await next_message()
        captured[name] = {"channel": channel, "hex": data.hex()}
    # (b): the original answers a request published as a wsfleet node would publish it
    await cmd(90, cmd="listen", event="ask", reply={"s": "\ud800x", "ok": True})
    request = {
        "data": {
            "event": "ask",
            "senderServer": "node1",
            "payload": {"q": 1},
            "targetServer": ["orig1"],
            "callbackId": CALLBACK_ID,
        }
    }
    await sub.publish("csbp:server_bridge", BusCodec(mode).dumps(request))
    await next_message()  # our own request
    channel, data = await next_message()
    captured["reply"] = {"channel": channel, "hex": data.hex()}
    node.stdin.close()
    await node.wait()
    await pubsub.aclose()
    await sub.aclose()
    return captured


async def main() -> None:
    result = {
        "about": "Bus messages published by tests/interop/original-node/node.mjs "
        "(notepack.io 3.0.1 / JSON.stringify), captured with PSUBSCRIBE by "
        "tests/interop/capture_original_bus.py",
        "inputs": {"lone": LONE, "long": LONG, "reply_callback_id": CALLBACK_ID},
    }
    for mode in Serialization:
        result[mode.value] = await capture(mode)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
