"""Single-client flood: one raw client floods a node while a healthy client measures round trips.

``python -m bench.flood [--duration 15] [--rate-limit off]`` starts ``wsfleet serve`` (with the
test application's ``add`` event) on a free loopback port, floods it from a thread with small
masked text frames written as fast as the socket takes them, and prints the healthy client's
round trips (p50/p99/max), its longest wait for an ack, and the time ``/healthz`` took.
The helpers are also used by ``tests/integration/test_flood.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import aiohttp

FLOOD_FRAME = b'{"event":"add","payload":[1,2]}'


def client_frame(payload: bytes, *, opcode: int = 0x1, masked: bool = True) -> bytes:
    """One client-to-server frame (FIN set), masked as RFC 6455 requires unless told not to."""
    length = len(payload)
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + length.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def raw_upgrade(port: int, path: str = "/ws", timeout: float = 10.0) -> socket.socket:
    """A blocking socket upgraded to WebSocket (the 101 read and checked)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed during the upgrade: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        status = head.split(b"\r\n", 1)[0]
        raise ConnectionError(f"upgrade refused: {status!r}")
    return sock


class Flooder(threading.Thread):
    """Writes ``frames`` copies of one small frame (or until :meth:`stop`) as fast as the socket
    takes them, from a thread: ``sendall`` releases the GIL, so the test's loop keeps running."""

    def __init__(self, port: int, frames: int | None, path: str = "/ws?id=flooder") -> None:
        super().__init__(name="flooder", daemon=True)
        self.sock = raw_upgrade(port, path)
        self.frames = frames
        self.sent = 0
        self.error: BaseException | None = None
        self._stop_flag = threading.Event()
        self.started_at = 0.0
        self.ended_at = 0.0

    def run(self) -> None:
        batch = 10_000
        chunk = client_frame(FLOOD_FRAME) * batch
        self.started_at = time.monotonic()
        try:
            while not self._stop_flag.is_set() and (self.frames is None or self.sent < self.frames):
                self.sock.sendall(chunk)
                self.sent += batch
        except OSError as exc:
            self.error = exc
        self.ended_at = time.monotonic()

    def stop(self) -> None:
        self._stop_flag.set()

    def close(self) -> None:
        self.stop()
        self.sock.close()
        self.join(10)


@dataclass
class RoundTrips:
    rtts: list[float] = field(default_factory=list)
    longest_wait: float = 0.0
    """Longest time between two acks (or from the start to the first one), seconds."""

    def quantile(self, q: float) -> float:
        ordered = sorted(self.rtts)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def healthy_client(
    port: int, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> RoundTrips:
    """Send ``add`` with a callbackId in a closed loop until ``stop``; time each ack."""
    out = RoundTrips()
    url = f"ws://127.0.0.1:{port}/ws?id=healthy"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        n = 0
        last = time.monotonic()
        while not stop.is_set():
            n += 1
            sent = time.monotonic()
            await ws.send_str(json.dumps({"event": "add", "payload": [n, 1], "callbackId": str(n)}))
            msg = await ws.receive(timeout=30)
            now = time.monotonic()
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            assert json.loads(msg.data) == {"payload": n + 1, "callbackId": str(n)}
            out.rtts.append(now - sent)
            out.longest_wait = max(out.longest_wait, now - last)
            last = now
            if ready is not None:
                ready.set()
            await asyncio.sleep(0.005)
    return out


async def healthz_seconds(internal_port: int) -> float:
    """Time of one ``GET /healthz`` (which must answer 200)."""
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.get(f"http://127.0.0.1:{internal_port}/healthz") as resp:
            assert resp.status == 200, resp.status
            await resp.read()
        return time.monotonic() - start


async def _main(args: argparse.Namespace) -> None:
    sys.path.insert(0, os.getcwd())
    from tests.procs import start_node

    node = await start_node(
        ["--app", "tests.fixtures.sample_app:setup", "--rate-limit-per-second", args.rate_limit]
    )
    try:
        stop = asyncio.Event()
        ready = asyncio.Event()
        healthy = asyncio.create_task(healthy_client(node.port, stop, ready))
        await ready.wait()
        flooder = Flooder(node.port, None)
        flooder.start()
        await asyncio.sleep(0.5)
        probes = []
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            assert node.internal_port is not None
            probes.append(await healthz_seconds(node.internal_port))
            await asyncio.sleep(1.0)
        stop.set()
        result = await healthy
        flooder.close()
        print(f"flood: {flooder.sent} frames written in {args.duration:.0f} s ({flooder.error!r})")
        print(
            f"healthy client: {len(result.rtts)} round trips, "
            f"p50 {result.quantile(0.5) * 1e3:.1f} ms, p99 {result.quantile(0.99) * 1e3:.1f} ms, "
            f"max {max(result.rtts) * 1e3:.1f} ms, longest wait {result.longest_wait * 1e3:.0f} ms"
        )
        print(
            f"/healthz: median {statistics.median(probes) * 1e3:.1f} ms, "
            f"max {max(probes) * 1e3:.1f} ms over {len(probes)} probes"
        )
    finally:
        await node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rate-limit", default="off", help="the node's --rate-limit-per-second")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
