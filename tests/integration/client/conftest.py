"""A tiny raw aiohttp WebSocket server speaking the original protocol, for the client's tests.

It is written from the spec (§2), independently of ``wsfleet.server``, and records every frame
it receives as raw text so tests can check the wire format byte by byte. Its behaviour per event:

- ``""`` (heartbeat): echoed as a text frame, unless ``echo_heartbeat`` is False;
- ``echo``: ack with the payload; ``ack-empty``: ack without payload; ``silent``: no ack;
- ``push``: push ``{"event": payload.event, "payload": payload.payload}``;
- ``raw``: send ``payload`` as a text frame, verbatim;
- ``close``: close with ``payload.code`` / ``payload.reason``;
- ``proto-ping``: send a protocol ping and ack ``"pong"`` once the protocol pong came back.

The upgrade is refused with HTTP 401 when the query has ``token=deny``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from wsfleet.client import Connector

BOUND = 5.0  # real seconds; only reached when a test fails


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ServerConnection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.path = request.path
        self.query_string = request.query_string
        self.raw_path = request.raw_path
        self.transport = request.transport
        self.frames: list[str] = []
        self.close_code: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()


class ProtocolServer:
    def __init__(self) -> None:
        self.echo_heartbeat = True
        self.port = 0
        self.connections: list[ServerConnection] = []
        self.connected: asyncio.Queue[ServerConnection] = asyncio.Queue()
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop listening. Open sockets are closed with 1001 (``graceful``) or aborted without
        a close frame, as when the process dies (the client then sees 1006)."""
        runner, self._runner = self._runner, None
        for conn in self.connections:
            if conn.close_code.done():
                continue
            if graceful:
                await conn.ws.close(code=1001, message=b"server shutdown")
            elif conn.transport is not None:
                conn.transport.abort()
        if runner is not None:
            await runner.cleanup()

    async def next_connection(self) -> ServerConnection:
        return await asyncio.wait_for(self.connected.get(), BOUND)

    async def next_frame(self) -> str:
        return await asyncio.wait_for(self.frames.get(), BOUND)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("token") == "deny":
            raise web.HTTPUnauthorized(text="bad token")
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        conn = ServerConnection(ws, request)
        self.connections.append(conn)
        self.connected.put_nowait(conn)
        pong_waiters: list[str] = []
        try:
            async for msg in ws:
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    for callback_id in pong_waiters:
                        await ws.send_str(dumps({"payload": "pong", "callbackId": callback_id}))
                    pong_waiters.clear()
                elif msg.type is WSMsgType.TEXT:
                    conn.frames.append(msg.data)
                    self.frames.put_nowait(msg.data)
                    if msg.data == "":
                        if self.echo_heartbeat:
                            await ws.send_str("")
                        continue
                    await self._dispatch(ws, json.loads(msg.data), pong_waiters)
        finally:
            if not conn.close_code.done():
                conn.close_code.set_result(ws.close_code)
        return ws

    async def _dispatch(
        self,
        ws: web.WebSocketResponse,
        frame: dict[str, Any],
        pong_waiters: list[str],
    ) -> None:
        event, payload, callback_id = frame["event"], frame.get("payload"), frame.get("callbackId")
        if event == "echo" and callback_id:
            await ws.send_str(dumps({"payload": payload, "callbackId": callback_id}))
        elif event == "ack-empty" and callback_id:
            await ws.send_str(dumps({"callbackId": callback_id}))
        elif event == "push":
            await ws.send_str(dumps({"event": payload["event"], "payload": payload["payload"]}))
        elif event == "raw":
            await ws.send_str(payload)
        elif event == "close":
            await ws.close(code=payload["code"], message=payload.get("reason", "").encode())
        elif event == "proto-ping" and callback_id:
            pong_waiters.append(callback_id)
            await ws.ping(b"wsfleet")
        # "silent" and anything else: no reply


class EventLog:
    """Records a connector's system events into a queue, in order."""

    NAMES = ("open", "close", "error", "reconnect", "repeat-limit", "ping", "pong", "pong-timeout")

    def __init__(self, connector: Connector) -> None:
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        for name in self.NAMES:
            connector.on(name, self._listener(name))  # type: ignore[arg-type]

    def _listener(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.log.append((name, args))
            self._queue.put_nowait((name, args))

        return record

    async def wait(self, name: str) -> tuple[Any, ...]:
        """Skip events until ``name``; returns its arguments."""
        while True:
            got, args = await asyncio.wait_for(self._queue.get(), BOUND)
            if got == name:
                return args

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


@pytest.fixture
async def server() -> AsyncIterator[ProtocolServer]:
    srv = ProtocolServer()
    await srv.start()
    yield srv
    await srv.stop()


FAST = {
    "ping_interval": 30.0,
    "fast_reconnect_interval": 0.05,
    "callback_timeout": 2.0,
    "close_timeout": 0.5,
    "connect_timeout": 2.0,
}


@pytest.fixture
async def make_client(server: ProtocolServer) -> AsyncIterator[Callable[..., Connector]]:
    made: list[Connector] = []

    def make(**options: Any) -> Connector:
        connector = Connector(server.url, **{**FAST, **options})
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await asyncio.wait_for(connector.aclose(), BOUND)


@pytest.fixture
def event_log() -> Callable[[Connector], EventLog]:
    return EventLog


@pytest.fixture
def bound() -> float:
    return BOUND
