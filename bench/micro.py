"""In-process cost of wsfleet's hot paths, stage by stage, next to the bare aiohttp equivalent.

``python -m bench.micro`` - no sockets: transports are stubs whose ``write`` does nothing, so the
figures are the Python work per message that the end-to-end benchmarks (``bench.run``) add on top
of the kernel's. Each figure is the best of several rounds (the least disturbed by other work on
the machine). This is a diagnostic: it calls wsfleet internals (``Dispatcher.frame`` & co.), so it
follows them when they change.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType
from aiohttp._websocket.writer import WebSocketWriter

from bench.servers import build_wsfleet
from wsfleet.protocol.codec import ClientEvent, decode_client_frame, encode_ack, encode_event
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.protocol.wsreader import FrameReader
from wsfleet.server import Server, native_conn
from wsfleet.server.native_conn import Connection
from wsfleet.server.socket import Socket, UpgradeRequest

ECHO = (
    '{"event":"echo","payload":{"seq":1234567,"pad":"xxxxxxxxxxxxxxxxxxxxxx"},'
    '"callbackId":"99-1234567"}'
)
TICK = {"ts": 1_732_000_000_000_000_000, "seq": 123, "pad": "x" * 40}


class StubTransport:
    """Accepts every write and never pushes back."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class StubProtocol:
    _paused = False

    async def _drain_helper(self) -> None:
        pass


def masked_text_frame(text: str, mask: bytes = b"\x1f\x2e\x3d\x4c") -> bytes:
    """A client's frame: FIN text, masked, shorter than 126 bytes."""
    payload = text.encode()
    assert len(payload) < 126
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    masked = bytes(a ^ b for a, b in zip(payload, key, strict=True))
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


class StubSite:
    """What a native :class:`Connection` needs of its listener, for one open connection."""

    def __init__(self, server: Server) -> None:
        self.node = server.dispatcher
        self.on_frame = server.dispatcher.frame
        self.budget = server.settings.max_frames_per_turn
        self.pending = 0
        self.closing: set[Connection] = set()


def new_reader(max_size: int) -> FrameReader:
    """The reader the native engine makes (older trees: without a compiled masker)."""
    mask_into = getattr(native_conn, "MASK_INTO", None)
    if mask_into is None:
        return FrameReader(max_size)
    return FrameReader(max_size, mask_into=mask_into)


def open_native(server: Server, socket_id: str) -> Connection:
    """A native engine connection past its handshake, writing to a :class:`StubTransport`."""
    conn = Connection(StubSite(server))  # type: ignore[arg-type]
    transport = StubTransport()
    conn._transport = transport
    conn._state = 2  # _OPEN
    conn._reader = new_reader(server.settings.max_message_size)
    request = UpgradeRequest(
        path="ws",
        params={"id": socket_id},
        query_string=f"id={socket_id}",
        headers={},
        cookies={},
        remote=None,
    )
    conn.socket = server.dispatcher.open(transport, conn._send_close, request, socket_id)  # type: ignore[arg-type]
    return conn


def best_us(fn: Callable[[], Any], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


async def best_us_async(fn: Callable[[], Awaitable[Any]], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def open_socket(server: Server, socket_id: str, *, recover: bool = False) -> Socket:
    params = {"id": socket_id, **({"wsf_recover": "1"} if recover else {})}
    request = UpgradeRequest(
        path="ws",
        params=params,
        query_string="&".join(f"{k}={v}" for k, v in params.items()),
        headers={},
        cookies={},
        remote=None,
    )
    if recover:  # what Recovery.admit leaves for a new session
        from wsfleet.server.recovery import _Pending

        request.extra["wsf_recovery"] = _Pending(None, {}, None)
    return server.dispatcher.open(StubTransport(), lambda code, reason: None, request, socket_id)  # type: ignore[arg-type]


async def run(n: int, rounds: int, fanout: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    server = build_wsfleet()
    socket = open_socket(server, "a")
    frame = decode_client_frame(ECHO)
    assert isinstance(frame, ClientEvent)
    ack_frame = build_text_frame(encode_ack("99-1234567", {"seq": 1}))

    def add(label: str, fn: Callable[[], Any]) -> None:
        rows.append((label, best_us(fn, n, rounds)))

    conn = open_native(server, "native")
    wire = masked_text_frame(ECHO)
    reader = new_reader(server.settings.max_message_size)
    reader_py = FrameReader(server.settings.max_message_size)

    def read_one() -> Any:
        reader.feed(wire)
        return reader.next_message()

    def read_one_py() -> Any:
        reader_py.feed(wire)
        return reader_py.next_message()

    add(
        "S2 native: Connection.data_received(echo frame) - bytes in, ack written",
        lambda: conn.data_received(wire),
    )
    add("  FrameReader.feed + next_message (compiled masker)", read_one)
    add("    the same, pure-Python unmask", read_one_py)
    add(
        "  Dispatcher.frame(echo) - whole ack path",
        lambda: server.dispatcher.frame(socket, ECHO),
    )
    add("    decode_client_frame", lambda: decode_client_frame(ECHO))
    add("      of which orjson.loads", lambda: orjson.loads(ECHO))
    add(
        "    Dispatcher.dispatch (handler, Acknowledge, ack)",
        lambda: server.dispatcher.dispatch(socket, frame),
    )
    add("      ListenerTable.take", lambda: server.dispatcher.events.take("echo"))
    add("      Socket.ack", lambda: socket.ack("99-1234567", {"seq": 1}))
    add(
        "        build_text_frame(encode_ack(...))",
        lambda: build_text_frame(encode_ack("99-1234567", {"seq": 1})),
    )
    add("        Socket.send_frame", lambda: socket.send_frame(ack_frame))
    add("    Dispatcher.emit_message", lambda: server.dispatcher.emit_message(socket, ECHO))

    writer = WebSocketWriter(StubProtocol(), StubTransport())  # type: ignore[arg-type]

    async def raw_on_text() -> None:
        obj = orjson.loads(ECHO)
        if isinstance(obj, dict) and obj.get("event") == "echo":
            callback_id = obj.get("callbackId")
            if isinstance(callback_id, str):
                ack = {"payload": obj.get("payload"), "callbackId": callback_id}
                await writer.send_frame(orjson.dumps(ack), WSMsgType.TEXT)

    rows.append(
        (
            "S2 raw: orjson.loads/dumps + await send_frame",
            await best_us_async(raw_on_text, n, rounds),
        )
    )

    # Fan-out: cost per recipient of one broadcast to `fanout` sockets.
    for i in range(fanout):
        open_socket(server, f"f{i}")
    recipients = server.socket_count
    per = best_us(lambda: server.broadcast("tick", TICK), max(1, n // recipients), rounds)
    rows.append((f"S1 wsfleet: Server.broadcast, per recipient ({recipients})", per / recipients))
    frame_bytes = build_text_frame(encode_event("tick", TICK))
    sockets = server.sockets()

    def send_all() -> None:
        for s in sockets:
            s.send_frame(frame_bytes)

    rows.append(
        (
            "  Socket.send_frame loop only",
            best_us(send_all, max(1, n // recipients), rounds) / recipients,
        )
    )
    writers = [WebSocketWriter(StubProtocol(), StubTransport()) for _ in range(recipients)]  # type: ignore[arg-type]

    async def raw_broadcast() -> None:
        data = orjson.dumps({"event": "tick", "payload": TICK})
        for w in writers:
            await w.send_frame(data, WSMsgType.TEXT)

    per = await best_us_async(raw_broadcast, max(1, n // recipients), rounds)
    rows.append((f"S1 raw: await send_frame per recipient ({recipients})", per / recipients))
    rows += _signing_rows(n, rounds)
    return rows


def _signing_rows(n: int, rounds: int) -> list[tuple[str, float]]:
    """The signed bus's cost per message: one HMAC per publish and one per receive."""
    from wsfleet.bus import envelopes as env
    from wsfleet.bus.codec import BusCodec
    from wsfleet.sealing import KeyRing, Signer

    codec = BusCodec()
    signer = Signer(KeyRing.parse("k1:" + "s" * 44))
    frame = encode_event("tick", TICK).decode()
    message = env.room(frame, "chat", "r1", "node-1", [], {"b": "0123456789ab", "s": 1})
    data = codec.dumps(message)
    sealed = signer.seal(data, "ws:chat")

    def row(label: str, fn: Callable[[], Any]) -> tuple[str, float]:
        return label, best_us(fn, n, rounds)

    return [
        row(f"bus: encode a room envelope ({len(data)} B)", lambda: codec.dumps(message)),
        row(
            f"  + seal, HMAC-SHA256 (+{len(sealed) - len(data)} B)", lambda: signer.seal(data, "c")
        ),
        row("bus: check the seal on receive", lambda: signer.check(b"ws:chat", sealed)),
        row("  + decode", lambda: codec.loads(sealed)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("-n", type=int, default=50_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fanout", type=int, default=1000, help="sockets for the broadcast rows")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.n, args.rounds, args.fanout))
    width = max(len(label) for label, _ in rows)
    for label, us in rows:
        print(f"{label:<{width}}  {us:6.2f} µs")


if __name__ == "__main__":
    main()
