"""The native WebSocket engine (``websocket_engine="native"``) on real sockets: what a client sees
on the wire, what the node's handlers see, and what it costs per idle connection.

The whole suite also runs on it (``WSFLEET_WEBSOCKET_ENGINE=native``, see the Makefile); these tests
pin the engine explicitly and cover what the shared tests do not reach."""

from __future__ import annotations

import asyncio
import base64
import os
import socket as stdsocket
import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import Connect, StartServer, wait_until

from wsfleet.server import Acknowledge, Server, ServerSettings, Socket
from wsfleet.server.errors import Refuse

pytestmark = pytest.mark.integration


def native(**kwargs: Any) -> ServerSettings:
    return ServerSettings(websocket_engine="native", **kwargs)


def masked(payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Raw:
    """A hand-written client on a blocking socket (run in a thread)."""

    def __init__(self, port: int, extensions: str | None = None) -> None:
        self.sock = stdsocket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?id=raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if extensions:
            request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
        self.sock.sendall((request + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        self.response, _, self.buf = self.buf.partition(b"\r\n\r\n")

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        return chunk

    def frame(self) -> tuple[int, bytes]:
        """(first byte, payload) of the next server frame."""
        while len(self.buf) < 2:
            self.buf += self._recv()
        length, start = self.buf[1] & 0x7F, 2
        if length == 126:
            while len(self.buf) < 4:
                self.buf += self._recv()
            length, start = int.from_bytes(self.buf[2:4], "big"), 4
        while len(self.buf) < start + length:
            self.buf += self._recv()
        first, payload = self.buf[0], self.buf[start : start + length]
        self.buf = self.buf[start + length :]
        return first, payload

    def close(self) -> None:
        self.sock.close()


def echo_app(server: Server) -> None:
    @server.on("echo")
    def echo(socket: Socket, payload: Any, ack: Acknowledge | None) -> Any:
        return payload


async def test_idle_connections_cost_no_task_each(start_server: StartServer) -> None:
    """The engine's memory saving comes from keeping nothing but the protocol object, the reader
    and the socket per idle connection: no task (aiohttp keeps one handler task and its
    coroutine frames each)."""
    running = await start_server(native())
    before = len(asyncio.all_tasks())
    async with aiohttp.ClientSession() as session:
        clients = [await session.ws_connect(running.url()) for _ in range(40)]
        await wait_until(lambda: running.server.connection_count == 40)
        assert len(asyncio.all_tasks()) - before < 5
        for ws in clients:
            await ws.close()


async def test_plain_http_on_the_native_port_is_answered_by_aiohttp(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(native())
    base = running.url().replace("ws://", "http://")
    async with aiohttp.ClientSession() as session:
        async with session.get(base) as resp:
            assert resp.status == 426
            assert "Expected a WebSocket upgrade" in await resp.text()
        async with session.post(base, data=b"x") as resp:
            assert resp.status == 405
        # an upgrade with a bad key is not a WebSocket upgrade: aiohttp answers it as before
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "short",
        }
        async with session.get(base, headers=headers) as resp:
            assert resp.status == 426
    (tmp_path / "index.html").write_text("<p>demo</p>")
    server = Server(native())
    port = await server.start("127.0.0.1", 0, static_dir=tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.status == 200 and await resp.text() == "<p>demo</p>"
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws")  # and WebSocket too
            await ws.close()
    finally:
        await server.close()


async def test_refusals_are_http_answers(start_server: StartServer) -> None:
    def authenticate(request: Any) -> str | None:
        if request.param("token") != "ok":
            raise Refuse(401, "bad token")
        return request.param("id")

    running = await start_server(native(), authenticate=authenticate)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(running.url(query="id=a&token=no"))
        assert refused.value.status == 401
        ws = await session.ws_connect(running.url(query="id=a&token=ok"))
        await wait_until(lambda: running.server.get_socket("a") is not None)
        await ws.close()
    assert running.server.stats.connections_refused["401"] == 1


async def test_fragments_pings_and_the_close_handshake_on_the_wire(
    start_server: StartServer,
) -> None:
    closes: list[tuple[int | None, str]] = []

    def setup(server: Server) -> None:
        echo_app(server)
        server.on_system("close", lambda socket, code, reason: closes.append((code, reason)))

    running = await start_server(native(), setup=setup)

    def talk() -> list[tuple[int, bytes]]:
        raw = Raw(running.port)
        assert raw.response.startswith(b"HTTP/1.1 101 ")
        text = b'{"event":"echo","payload":"ab","callbackId":"c1"}'
        raw.sock.sendall(
            masked(text[:10], fin=False)
            + masked(b"are you there", 0x9)  # a ping between the fragments
            + masked(text[10:30], 0x0, fin=False)
            + masked(text[30:], 0x0)
        )
        got = [raw.frame(), raw.frame()]
        raw.sock.sendall(masked(struct.pack("!H", 4001) + b"manual", 0x8))
        got.append(raw.frame())
        with pytest.raises(EOFError):  # the server closes after answering
            raw.frame()
        raw.close()
        return got

    got = await asyncio.to_thread(talk)
    assert got == [
        (0x8A, b"are you there"),  # the pong first: the message was not whole yet
        (0x81, b'{"payload":"ab","callbackId":"c1"}'),
        (0x88, struct.pack("!H", 1000)),  # the close answered (with 1000, as aiohttp does)
    ]
    await wait_until(lambda: bool(closes))
    assert closes == [(4001, "manual")]


async def test_a_frame_announced_too_big_is_refused_from_its_header(
    start_server: StartServer,
) -> None:
    running = await start_server(native(max_message_size=1024))

    def send_header() -> tuple[int, bytes]:
        raw = Raw(running.port)
        raw.sock.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 40) + b"mask")
        try:
            return raw.frame()
        finally:
            raw.close()

    first, payload = await asyncio.to_thread(send_header)
    assert first == 0x88 and struct.unpack("!H", payload[:2])[0] == 1009
    await wait_until(lambda: bool(running.server.stats.connections_closed))
    assert dict(running.server.stats.connections_closed) == {1009: 1}


async def test_compressed_messages_both_ways(start_server: StartServer) -> None:
    running = await start_server(native(compression=True, compression_threshold=64), setup=echo_app)
    big = "wsfleet " * 200

    def talk() -> tuple[bytes, tuple[int, bytes]]:
        raw = Raw(running.port, "permessage-deflate; client_max_window_bits")
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        text = f'{{"event":"echo","payload":"{big}","callbackId":"z"}}'.encode()
        body = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        raw.sock.sendall(masked(body[:-4], rsv1=True))
        try:
            return raw.response, raw.frame()
        finally:
            raw.close()

    response, (first, payload) = await asyncio.to_thread(talk)
    assert response.endswith(b"\r\nSec-WebSocket-Extensions: permessage-deflate")
    assert first == 0xC1  # FIN, RSV1 (compressed), text
    inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    assert inflated == f'{{"payload":"{big}","callbackId":"z"}}'.encode()


async def test_a_client_that_does_not_read_is_closed_as_a_slow_consumer(
    start_server: StartServer,
) -> None:
    """The write buffer is bounded by ``max_send_buffer``: beyond it the socket is closed with
    4003 (the slow-consumer policy) instead of buffering without end."""
    running = await start_server(native(max_send_buffer=256 * 1024))
    raw = await asyncio.to_thread(Raw, running.port)
    raw.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    try:
        await wait_until(lambda: running.server.connection_count == 1)
        (socket,) = running.server.hub.connections()
        chunk = "x" * 16384
        for _ in range(400):  # up to 6.5 MB, far more than the kernel buffers hold
            if not socket.emit("flood", chunk):
                break
            await asyncio.sleep(0)
        assert running.server.stats.slow_consumer_disconnects == 1
        assert socket.close_code == 4003
    finally:
        raw.close()
    await wait_until(lambda: running.server.connection_count == 0)
    assert dict(running.server.stats.connections_closed) == {4003: 1}


async def test_a_client_that_floods_past_a_busy_handler_is_held_back_by_tcp(
    start_server: StartServer, connect: Connect
) -> None:
    """With the handler slots full the engine stops reading: what the client sends waits in the
    kernel, not in the node's memory, and is handled in order once a slot frees."""
    gate = asyncio.Event()
    seen: list[int] = []

    def setup(server: Server) -> None:
        @server.on("slow")
        async def slow(socket: Socket, payload: int, ack: Acknowledge | None) -> None:
            seen.append(payload)
            await gate.wait()

    running = await start_server(
        native(max_inflight_handlers=1, rate_limit_per_second=None), setup=setup
    )
    client = await connect(running.url())
    pad = "p" * 1000
    for i in range(2000):  # 2 MB
        await client.send(f'{{"event":"slow","payload":{i},"pad":"{pad}"}}')
    await wait_until(lambda: seen == [0])
    (socket,) = running.server.hub.connections()
    connection = socket._closer.__self__  # type: ignore[attr-defined]
    assert connection.queued_bytes() < 300_000  # at most one read of the transport
    gate.set()
    await wait_until(lambda: len(seen) == 2000, timeout=20)
    assert seen == list(range(2000))
