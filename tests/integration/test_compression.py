"""permessage-deflate: negotiated only when the server has it on and the client offers it, large
messages compressed on the wire (checked on the raw bytes), short ones not, and the Python client
round-trips through it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib
from typing import Any

import pytest
from tests.conftest import StartServer

from wsfleet.client import Connector
from wsfleet.protocol.deflate import Deflater
from wsfleet.server import Server, ServerSettings

pytestmark = pytest.mark.integration

BIG = "wsfleet " * 2000  # 16 000 bytes, very compressible


def echo_app(server: Server) -> None:
    @server.on("echo")
    def echo(socket: Any, payload: Any, ack: Any) -> Any:
        return payload


class RawWs:
    """A hand-written WebSocket client, to see the frames as they are on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.headers: dict[str, str] = {}

    @classmethod
    async def open(cls, port: int, extensions: str | None) -> RawWs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /ws HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws = cls(reader, writer)
        async with asyncio.timeout(5):
            status = await reader.readline()
            assert b" 101 " in status, status
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                ws.headers[name.strip().lower()] = value.strip()
        return ws

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        length = len(data)
        if length < 126:
            header = bytes((0x81, 0x80 | length))
        elif length < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(header + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """(first byte, payload) of the next frame, as received."""
        async with asyncio.timeout(5):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


OFFER = "permessage-deflate; client_max_window_bits"


async def test_large_messages_are_compressed_on_the_wire_small_ones_are_not(
    start_server: StartServer,
) -> None:
    running = await start_server(
        ServerSettings(compression=True, compression_threshold=256), setup=echo_app
    )
    ws = await RawWs.open(running.port, OFFER)
    try:
        assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        ws.send_text(json.dumps({"event": "echo", "payload": BIG, "callbackId": "1"}))
        first, payload = await ws.frame()
        assert first == 0xC1  # FIN, RSV1 (compressed), text
        assert len(payload) < 500
        assert json.loads(inflate(payload)) == {"payload": BIG, "callbackId": "1"}
        ws.send_text(json.dumps({"event": "echo", "payload": "hi", "callbackId": "2"}))
        first, payload = await ws.frame()
        assert first == 0x81  # below the threshold: plain
        assert json.loads(payload) == {"payload": "hi", "callbackId": "2"}
        # every message on its own: a second large one inflates without the first one's window
        ws.send_text(json.dumps({"event": "echo", "payload": BIG, "callbackId": "3"}))
        first, payload = await ws.frame()
        assert first == 0xC1
        assert json.loads(inflate(payload)) == {"payload": BIG, "callbackId": "3"}
    finally:
        await ws.close()


async def test_no_compression_unless_both_sides_want_it(start_server: StartServer) -> None:
    on = await start_server(
        ServerSettings(compression=True, compression_threshold=256), setup=echo_app
    )
    off = await start_server(setup=echo_app)  # the default: off
    for port, offer in ((on.port, None), (off.port, OFFER)):
        ws = await RawWs.open(port, offer)
        try:
            assert "sec-websocket-extensions" not in ws.headers
            ws.send_text(json.dumps({"event": "echo", "payload": BIG, "callbackId": "1"}))
            first, payload = await ws.frame()
            assert first == 0x81
            assert json.loads(payload) == {"payload": BIG, "callbackId": "1"}
        finally:
            await ws.close()


async def test_the_python_client_round_trips_compressed(start_server: StartServer) -> None:
    running = await start_server(
        ServerSettings(compression=True, compression_threshold=256), setup=echo_app
    )
    url = f"ws://127.0.0.1:{running.port}/ws"
    async with Connector(url, compress=True) as client:
        await client.wait_open(timeout=5)
        before = running.server.stats.bytes_out
        assert await client.emit_with_ack("echo", BIG, timeout=5) == BIG
        assert running.server.stats.bytes_out - before < 500  # compressed
    async with Connector(url) as plain:  # compress=False (default): plain frames
        await plain.wait_open(timeout=5)
        before = running.server.stats.bytes_out
        assert await plain.emit_with_ack("echo", BIG, timeout=5) == BIG
        assert running.server.stats.bytes_out - before > len(BIG)


def test_deflater_leaves_short_and_control_frames_and_compresses_a_frame_once() -> None:
    deflate = Deflater(threshold=100)
    short = bytes((0x81, 3)) + b"abc"
    assert deflate(short) is short
    ping = bytes((0x89, 0))
    assert deflate(ping) is ping
    body = b"x" * 1000
    frame = struct.pack("!BBH", 0x81, 126, len(body)) + body
    out = deflate(frame)
    assert out[0] == 0xC1 and out[1] < 126
    assert inflate(out[2:]) == body
    assert deflate(frame) is out  # the same frame for the next socket: no second compression
    with pytest.raises(ValueError, match="window bits must be 9-15"):
        Deflater(100, wbits=8)
