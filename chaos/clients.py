"""WebSocket clients of the demo app (``wsfleet serve`` without ``--app``) that measure."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ROOM = "chaos"


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = 0
        self._acks: dict[str, asyncio.Future[Any]] = {}
        self.events: asyncio.Queue[dict[str, Any]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.on_event: Any = None

    async def open(self) -> Client:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0, heartbeat=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT or not msg.data:
                continue
            data = json.loads(msg.data)
            callback_id = data.get("callbackId")
            if callback_id is not None:
                future = self._acks.pop(callback_id, None)
                if future is not None and not future.done():
                    future.set_result(data.get("payload"))
            elif self.on_event is not None:
                self.on_event(data)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(ConnectionError("closed"))

    async def call(self, event: str, payload: Any, timeout: float = 10.0) -> Any:
        assert self.ws is not None
        self._ids += 1
        callback_id = f"c{self._ids}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[callback_id] = future
        await self.ws.send_str(
            json.dumps({"event": event, "payload": payload, "callbackId": callback_id})
        )
        async with asyncio.timeout(timeout):
            return await future

    async def send(self, event: str, payload: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"event": event, "payload": payload}))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class Tally:
    """Numbered messages: what was sent and what one receiver got."""

    sent: int = 0
    got: list[int] = field(default_factory=list)

    def row(self) -> dict[str, int]:
        seen: set[int] = set()
        duplicated = reordered = 0
        last = -1
        for n in self.got:
            if n in seen:
                duplicated += 1
                continue
            seen.add(n)
            if n < last:
                reordered += 1
            last = max(last, n)
        return {
            "sent": self.sent,
            "delivered": len(seen),
            "lost": self.sent - len(seen & set(range(self.sent))),
            "duplicated": duplicated,
            "reordered": reordered,
        }


async def receiver(session: aiohttp.ClientSession, url: str, tally: Tally, event: str) -> Client:
    """A client that joined the room and records the numbers of ``event`` messages."""

    def on_event(data: dict[str, Any]) -> None:
        if data.get("event") != event:
            return
        payload = data.get("payload")
        if not isinstance(payload, dict):
            return
        text = payload.get("text") if event == "said" else payload.get("n")
        if isinstance(text, str) and text.startswith("n:"):
            tally.got.append(int(text[2:].split(":", 1)[0]))
        elif isinstance(text, int):
            tally.got.append(text)

    client = await Client(session, url).open()
    client.on_event = on_event
    await client.call("join", {"room": ROOM})
    return client


async def stream(client: Client, tally: Tally, rate: float, stop: asyncio.Event) -> None:
    """``say`` numbered messages to the room at ``rate`` per second until ``stop``."""
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        await client.send("say", {"room": ROOM, "text": f"n:{tally.sent}"})
        tally.sent += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class Latency:
    samples: list[float] = field(default_factory=list)
    timeouts: int = 0

    def percentiles(self) -> tuple[float, float]:
        if not self.samples:
            return (float("nan"), float("nan"))
        ordered = sorted(self.samples)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (p50 * 1000, p99 * 1000)


async def echo_loop(client: Client, latency: Latency, stop: asyncio.Event) -> None:
    """A healthy client: one ``echo`` round trip at a time, every 20 ms."""
    while not stop.is_set():
        start = time.monotonic()
        try:
            await client.call("echo", "hi", timeout=5)
            latency.samples.append(time.monotonic() - start)
        except (TimeoutError, ConnectionError):
            latency.timeouts += 1
            latency.samples.append(5.0)
        await asyncio.sleep(0.02)


async def flood(client: Client, stop: asyncio.Event) -> int:
    """Frames as fast as this process can write them (no acks asked)."""
    assert client.ws is not None
    frame = json.dumps({"event": "echo", "payload": "x" * 32})
    sent = 0
    while not stop.is_set():
        for _ in range(200):
            await client.ws.send_str(frame)
        sent += 200
        await asyncio.sleep(0)
    return sent


async def ready(session: aiohttp.ClientSession, internal: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with session.get(internal + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


async def redis_nodes(session: aiohttp.ClientSession, internal: str) -> set[str]:
    async with session.get(internal + "/cluster") as response:
        view = await response.json()
    return {str(r["key"]) for r in view.get("redis", [])}


async def metric(session: aiohttp.ClientSession, internal: str, name: str) -> float:
    """The sum of a Prometheus metric's samples on a node's internal port (0 when absent)."""
    async with session.get(internal + "/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
