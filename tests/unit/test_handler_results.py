"""What a handler returns is its ack: plain values at once, awaitables once they are done."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import orjson

from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server import Server
from wsfleet.server.socket import UpgradeRequest

REQUEST = UpgradeRequest(path="", params={}, query_string="", headers={}, cookies={}, remote=None)


class Wire:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class Later:
    """An awaitable that is not a coroutine (its class has ``__await__``)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        yield from asyncio.sleep(0).__await__()
        return self.value


class AwaitableDict(dict[str, Any]):
    """A dict subclass that is awaitable: not taken for a plain dict."""

    def __await__(self) -> Generator[Any, None, Any]:
        yield from asyncio.sleep(0).__await__()
        return {"awaited": True}


RESULTS: dict[str, Any] = {
    "dict": {"a": 1},
    "list": [1, 2],
    "str": "s",
    "int": 7,
    "float": 1.5,
    "bool": True,
    "tuple": (1, 2),
}


async def test_plain_results_are_acked_at_once_and_awaitables_after_they_are_done() -> None:
    server = Server()
    for name, value in RESULTS.items():
        server.on(name, lambda socket, payload, ack, value=value: value)
    server.on("later", lambda socket, payload, ack: Later({"late": 1}))
    server.on("awaitable-dict", lambda socket, payload, ack: AwaitableDict(x=1))
    wire = Wire()
    socket = server.dispatcher.open(wire, lambda code, reason: None, REQUEST, "s1")  # type: ignore[arg-type]
    for name in [*RESULTS, "later", "awaitable-dict"]:
        server.dispatcher.frame(socket, orjson.dumps({"event": name, "callbackId": name}).decode())
    expected = [
        build_text_frame(orjson.dumps({"payload": value, "callbackId": name}))
        for name, value in RESULTS.items()
    ]
    assert wire.written == expected  # synchronously, in order
    for _ in range(5):
        await asyncio.sleep(0)
    acks = [orjson.loads(frame[2:]) for frame in wire.written[len(expected) :]]
    assert sorted(acks, key=lambda a: a["callbackId"]) == [
        {"payload": {"awaited": True}, "callbackId": "awaitable-dict"},
        {"payload": {"late": 1}, "callbackId": "later"},
    ]


async def test_settings_assigned_before_start_reach_the_frame_path() -> None:
    """The heartbeat text, the depth limit and the handler slots are read from the settings the
    node has when the frame arrives, also after ``server.settings = replace(...)``."""
    import dataclasses

    server = Server()
    server.settings = dataclasses.replace(
        server.settings, heartbeat="tick", max_json_depth=2, max_inflight_handlers=1
    )
    server.on("echo", lambda socket, payload, ack: payload)

    async def slow(socket: Any, payload: Any, ack: Any) -> None:
        await asyncio.Event().wait()

    server.on("slow", slow)
    wire = Wire()
    socket = server.dispatcher.open(wire, lambda code, reason: None, REQUEST, "s1")  # type: ignore[arg-type]
    server.dispatcher.frame(socket, "tick")
    assert wire.written == [build_text_frame(b"tick")]
    deep = orjson.dumps({"event": "echo", "payload": [[[1]]], "callbackId": "a"}).decode()
    server.dispatcher.frame(socket, deep)
    assert server.stats.malformed_frames["depth"] == 1
    assert len(wire.written) == 1  # dropped, not acked
    assert server.dispatcher.frame(socket, '{"event":"slow"}') is True  # the one slot is taken
    await socket.cancel_handlers()


async def test_acks_encode_non_string_keys_as_javascript_does() -> None:
    server = Server()
    server.on("keys", lambda socket, payload, ack: {1: "one", "s": {2.5: True}})
    wire = Wire()
    socket = server.dispatcher.open(wire, lambda code, reason: None, REQUEST, "s1")  # type: ignore[arg-type]
    server.dispatcher.frame(socket, '{"event":"keys","callbackId":"k"}')
    assert wire.written == [
        build_text_frame(b'{"payload":{"1":"one","s":{"2.5":true}},"callbackId":"k"}')
    ]
