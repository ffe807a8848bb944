"""The socket is its connection's one writer: frames leave in call order, and nothing (no event,
no ack, no pong) follows the close frame. Checked on the wire, with a raw TCP client."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

from tests.conftest import StartServer

from wsfleet.server import Acknowledge, ServerSettings, Socket


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def read_frames(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> list[tuple[int, bytes]]:
    """Every frame the server sends until it ends the connection; the close frame is answered,
    as a client does."""
    frames = []
    while True:
        try:
            head = await reader.readexactly(2)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return frames
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        frames.append((opcode, await reader.readexactly(length)))
        if opcode == 0x8:  # a ping after the close frame (no pong may come), then our close
            writer.write(client_frame(0x9, b"are you there"))
            writer.write(client_frame(0x8, frames[-1][1][:2]))


async def test_nothing_is_written_after_the_close_frame(start_server: StartServer) -> None:
    after_close: list[bool] = []

    def setup(server: Any) -> None:
        @server.on("bye")
        def bye(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
            socket.emit("first", 1)
            socket.emit("second", 2)
            socket.close(4000, "bye")
            after_close.append(socket.emit("late", 3))
            after_close.append(socket.send_frame(b"\x81\x01x"))
            if ack is not None:
                after_close.append(ack("late ack"))

    node = await start_server(ServerSettings(close_timeout=0.5), setup=setup)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101")
    writer.write(client_frame(0x1, b'{"event":"bye","callbackId":"c1"}'))
    await writer.drain()
    async with asyncio.timeout(5):
        frames = await read_frames(reader, writer)
    writer.close()
    assert frames[:2] == [
        (0x1, b'{"event":"first","payload":1}'),
        (0x1, b'{"event":"second","payload":2}'),
    ]
    assert [op for op, _ in frames[2:]] == [0x8], frames  # the close frame, and nothing after
    assert struct.unpack("!H", frames[2][1][:2])[0] == 4000
    assert after_close == [False, False, False]
