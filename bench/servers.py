"""The two servers the benchmarks compare, with the same observable behaviour.

* ``wsfleet``: a :class:`wsfleet.server.Server` with two handlers.
* ``raw``: the bare aiohttp reference - one ``WebSocketResponse`` per connection, a dict of them
  keyed by ``?id=``, ``orjson`` for JSON, and ``await ws.send_frame(data, WSMsgType.TEXT)`` for
  every outgoing message (``--raw-send str`` switches to ``await ws.send_str(text)``).

Both speak the wsfleet client protocol:

* a connection is accepted with ``?id=<socket id>`` and registered under it;
* ``{"event":"echo","payload":P,"callbackId":C}`` is acked with ``{"payload":P,"callbackId":C}``;
* ``{"event":"trigger","payload":{"count":N,"size":B}}`` broadcasts N pushed events
  ``{"event":"tick","payload":{"ts":<time.time_ns()>,"seq":i,"pad":"xx…"}}`` of about B bytes each
  to every registered connection. The timestamp is taken just before each broadcast is encoded,
  and each broadcast yields to the event loop once (``await asyncio.sleep(0)``) before the next
  (``--trigger loop``: all in one synchronous loop, the original's pattern);
* the heartbeat text frame ``""`` is echoed as ``""``.

In a fleet (``build_wsfleet(fleet=FleetSettings(...))``, scenarios S3-S5) the wsfleet server also
handles:

* ``{"event":"dm","payload":{"to":ID,…}}``: ``server.to_socket_id(ID, "dm", payload)`` (S4);
* the cross-server event ``bench.rpc``, answered with its message's ``payload`` (S5);
* ``{"event":"rpc","payload":{"callers":C,"duration":D,"nodes":N,"size":B},"callbackId":…}``:
  waits until a ``mode="all"`` call is answered by N nodes, then runs C tasks, each awaiting
  ``emit_cross_server_async("bench.rpc", msg, mode="all")`` in a closed loop for D seconds (after
  a 1 s warm-up), and acks with the calls completed in the window, their latency percentiles, the
  failures and this node's CPU over the window (S5).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web

from wsfleet.bus import FleetSettings
from wsfleet.server import Acknowledge, Server, ServerSettings, Socket, UpgradeRequest

Kind = Literal["wsfleet", "raw", "native", "wsfleet-aiohttp", "picows", "picows-1k"]
#: ``wsfleet`` runs on the default engine; ``native`` and ``wsfleet-aiohttp`` pin the engine
#: (``websocket_engine``); ``picows`` and ``picows-1k`` are bare picows (16 KiB and 1 KiB read
#: buffers), a candidate engine that was measured and not adopted.
KINDS: tuple[Kind, ...] = ("raw", "wsfleet", "native", "wsfleet-aiohttp", "picows", "picows-1k")
TICK_EVENT = "tick"
MAX_COUNT = 100_000


#: The words a "text" pad is made of: broadcasts that look like chat text compress like it (about
#: 3x), where the default pad of x's compresses about 50x.
_WORDS = [
    "the",
    "fleet",
    "node",
    "room",
    "said",
    "hello",
    "world",
    "message",
    "client",
    "server",
    "redis",
    "again",
    "later",
    "send",
    "join",
    "leave",
    "ready",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "what",
    "when",
    "where",
    "why",
    "how",
]
PAD_STYLE = {"style": "x"}


def _pad(n: int) -> str:
    if n <= 0:
        return ""
    if PAD_STYLE["style"] != "text":
        return "x" * n
    rng = random.Random(n)  # the same text for the same size, run after run
    words: list[str] = []
    length = 0
    while length < n:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:n]


def burst_params(payload: Any) -> tuple[int, str]:
    """``(count, pad)`` from a trigger payload; ``pad`` makes each tick frame ``size`` bytes."""
    count: object = 200
    size: object = 100
    if isinstance(payload, dict):
        count = payload.get("count", count)
        size = payload.get("size", size)
    if not isinstance(count, int) or not isinstance(size, int):
        raise ValueError("trigger needs integer 'count' and 'size'")
    count = max(1, min(count, MAX_COUNT))
    size = max(1, min(size, 1 << 16))
    base = orjson.dumps(
        {"event": TICK_EVENT, "payload": {"ts": time.time_ns(), "seq": count - 1, "pad": ""}}
    )
    return count, _pad(size - len(base))


# -- wsfleet ----------------------------------------------------------------------------------


def authenticate(request: UpgradeRequest) -> str | None:
    return request.param("id")


def build_wsfleet(
    settings: ServerSettings | None = None,
    fleet: FleetSettings | None = None,
    *,
    trigger_loop: bool = False,
) -> Server:
    # Benchmarks measure throughput: the per-connection rate limit (on by default) is off here.
    settings = settings or ServerSettings(rate_limit_per_second=None)
    server = Server(settings, fleet=fleet, authenticate=authenticate)

    @server.on("echo")
    def echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        return payload

    if trigger_loop:  # the original's pattern: one synchronous loop, no yield in between

        @server.on("trigger")
        def trigger_in_one_loop(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
            count, pad = burst_params(payload)
            for seq in range(count):
                server.broadcast(TICK_EVENT, {"ts": time.time_ns(), "seq": seq, "pad": pad})
            return {"sent": count}

    else:

        @server.on("trigger")
        async def trigger(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
            count, pad = burst_params(payload)
            for seq in range(count):
                server.broadcast(TICK_EVENT, {"ts": time.time_ns(), "seq": seq, "pad": pad})
                await asyncio.sleep(0)
            return {"sent": count}

    if fleet is not None:
        add_fleet_handlers(server)
    return server


RPC_EVENT = "bench.rpc"


def _pct(sorted_ns: list[int], p: float) -> float | None:
    if not sorted_ns:
        return None
    k = min(len(sorted_ns), max(1, int(p * len(sorted_ns) + 0.5)))
    return sorted_ns[k - 1] / 1e6


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def add_fleet_handlers(server: Server) -> None:
    @server.on("dm")
    def dm(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        if isinstance(payload, dict) and isinstance(to := payload.get("to"), str):
            server.to_socket_id(to, "dm", payload)
        return None

    @server.on_cross_server_event(RPC_EVENT)
    def rpc_reply(data: Any, reply: Any) -> Any:
        return data.get("payload") if isinstance(data, dict) else None

    @server.on("rpc")
    async def rpc(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        opts = payload if isinstance(payload, dict) else {}
        callers = max(1, min(int(opts.get("callers", 32)), 1024))
        duration = max(0.1, min(float(opts.get("duration", 10.0)), 120.0))
        nodes = max(1, int(opts.get("nodes", 3)))
        message = {"pad": "x" * max(0, int(opts.get("size", 100)) - 40)}
        deadline = time.monotonic() + 20
        while True:  # until every node has joined the registry and answers
            res = await server.emit_cross_server_async(RPC_EVENT, message, mode="all", timeout=2)
            if res.success and len(res.responses) >= nodes:
                break
            if time.monotonic() > deadline:
                return {"error": f"only {len(res.responses)} of {nodes} nodes answer"}
            await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        start = loop.time() + 1.0
        end = start + duration
        lat: list[int] = []
        failures = 0
        short = 0

        async def caller() -> None:
            nonlocal failures, short
            while (t0 := loop.time()) < end:
                n0 = time.perf_counter_ns()
                res = await server.emit_cross_server_async(
                    RPC_EVENT, message, mode="all", timeout=5
                )
                n1 = time.perf_counter_ns()
                if t0 < start or loop.time() > end:
                    continue
                if not res.success:
                    failures += 1
                elif len(res.responses) < nodes:
                    short += 1
                else:
                    lat.append(n1 - n0)

        tasks = [asyncio.create_task(caller()) for _ in range(callers)]
        await asyncio.sleep(max(0.0, start - loop.time()))
        cpu0 = _cpu_s()
        await asyncio.sleep(max(0.0, end - loop.time()))
        cpu1 = _cpu_s()
        await asyncio.gather(*tasks)
        lat.sort()
        return {
            "calls": len(lat),
            "calls_per_s": len(lat) / duration,
            "p50_ms": _pct(lat, 0.5),
            "p99_ms": _pct(lat, 0.99),
            "max_ms": lat[-1] / 1e6 if lat else None,
            "failures": failures,
            "short_answers": short,
            "callers": callers,
            "duration_s": duration,
            "nodes": nodes,
            "caller_node_cpu_s": cpu1 - cpu0,
        }


# -- the bare aiohttp reference ---------------------------------------------------------------


class RawServer:
    """The idiomatic bare-aiohttp equivalent of :func:`build_wsfleet`."""

    def __init__(self, send: Literal["frame", "str"] = "frame") -> None:
        self.clients: dict[str, web.WebSocketResponse] = {}
        self.send_mode = send
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self.handle)
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20, timeout=5.0)
        await ws.prepare(request)
        socket_id = request.query.get("id")
        if socket_id:
            self.clients[socket_id] = ws
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self.on_text(ws, msg.data)
        finally:
            if socket_id and self.clients.get(socket_id) is ws:
                del self.clients[socket_id]
        return ws

    async def on_text(self, ws: web.WebSocketResponse, data: str) -> None:
        if data == "":
            await ws.send_str("")
            return
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(frame, dict):
            return
        event = frame.get("event")
        if event == "echo":
            callback_id = frame.get("callbackId")
            if isinstance(callback_id, str):
                ack = orjson.dumps({"payload": frame.get("payload"), "callbackId": callback_id})
                if self.send_mode == "frame":
                    await ws.send_frame(ack, WSMsgType.TEXT)
                else:
                    await ws.send_str(ack.decode())
        elif event == "trigger":
            task = asyncio.create_task(self.burst(frame.get("payload")))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def burst(self, payload: Any) -> None:
        count, pad = burst_params(payload)
        text_mode = self.send_mode == "str"
        for seq in range(count):
            data = orjson.dumps(
                {"event": TICK_EVENT, "payload": {"ts": time.time_ns(), "seq": seq, "pad": pad}}
            )
            if text_mode:
                text = data.decode()
                for ws in list(self.clients.values()):
                    try:  # noqa: SIM105 - contextlib.suppress costs ~0.5 µs per send
                        await ws.send_str(text)
                    except ConnectionError:  # closed meanwhile
                        pass
            else:
                for ws in list(self.clients.values()):
                    try:  # noqa: SIM105 - contextlib.suppress costs ~0.5 µs per send
                        await ws.send_frame(data, WSMsgType.TEXT)
                    except ConnectionError:  # closed meanwhile
                        pass
            await asyncio.sleep(0)

    async def close_all(self) -> None:
        for ws in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")


# -- the bare picows reference (optional: ``pip install picows``) ----------------------------


class PicowsServer:
    """The same protocol on bare ``picows`` (Cython): a candidate engine, measured as is.

    ``read_buffer`` is picows' initial read buffer per connection (its default is 16 KiB)."""

    def __init__(self, read_buffer: int = 16384) -> None:
        try:
            import picows
        except ImportError:
            raise SystemExit(
                "bench: the picows kinds need picows: pip install -e '.[bench]'"
            ) from None

        self.picows = picows
        self.read_buffer = read_buffer
        self.clients: dict[str, Any] = {}
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        picows = self.picows
        outer = self

        class Listener(picows.WSListener):  # type: ignore[misc, name-defined]
            def __init__(self, socket_id: str | None) -> None:
                self.socket_id = socket_id

            def on_ws_connected(self, transport: Any) -> None:
                if self.socket_id:
                    outer.clients[self.socket_id] = transport

            def on_ws_disconnected(self, transport: Any) -> None:
                if self.socket_id and outer.clients.get(self.socket_id) is transport:
                    del outer.clients[self.socket_id]

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                kind = frame.msg_type
                if kind == picows.WSMsgType.TEXT:
                    outer.on_text(transport, frame.get_payload_as_bytes())
                elif kind == picows.WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()

        def factory(request: Any) -> Any:
            target = request.path.decode() if isinstance(request.path, bytes) else request.path
            query = target.partition("?")[2]
            socket_id = next(
                (p[3:] for p in query.split("&") if p.startswith("id=") and len(p) > 3), None
            )
            return Listener(socket_id)

        self.server = await picows.ws_create_server(
            factory, host, port, read_buffer_init_size=self.read_buffer
        )
        return int(self.server.sockets[0].getsockname()[1])

    def on_text(self, transport: Any, data: bytes) -> None:
        text = self.picows.WSMsgType.TEXT
        if data == b"":
            transport.send(text, b"")
            return
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(frame, dict):
            return
        event = frame.get("event")
        if event == "echo":
            callback_id = frame.get("callbackId")
            if isinstance(callback_id, str):
                transport.send(
                    text, orjson.dumps({"payload": frame.get("payload"), "callbackId": callback_id})
                )
        elif event == "trigger":
            task = asyncio.create_task(self.burst(frame.get("payload")))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def burst(self, payload: Any) -> None:
        count, pad = burst_params(payload)
        text = self.picows.WSMsgType.TEXT
        for seq in range(count):
            data = orjson.dumps(
                {"event": TICK_EVENT, "payload": {"ts": time.time_ns(), "seq": seq, "pad": pad}}
            )
            for transport in list(self.clients.values()):
                transport.send(text, data)
            await asyncio.sleep(0)

    async def close_all(self) -> None:
        for transport in list(self.clients.values()):
            with contextlib.suppress(Exception):
                transport.send_close(1001, b"server shutting down")
                transport.disconnect()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
