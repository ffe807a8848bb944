"""Chat clients for the end-to-end tests: raw WebSocket peers of the demo app (wire protocol as in
tests/conftest.py) that connect through the ingress, say numbered messages in a room, record what
they hear, and reconnect (and rejoin) when the server closes them with 1012."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

HOST = "wsfleet.example.com"  # the chart's default Ingress host
ROOM = "e2e"
_ids = itertools.count()


@dataclass
class Client:
    session: aiohttp.ClientSession
    url: str
    name: str
    ws: aiohttp.ClientWebSocketResponse | None = None
    heard: dict[str, set[int]] = field(default_factory=dict)  # sender -> seqs heard
    announcements: list[Any] = field(default_factory=list)
    directs: list[Any] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    close_codes: list[int | None] = field(default_factory=list)
    reconnects: int = 0
    continuous: bool = True  # never disconnected
    _waiters: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _online: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: bool = False

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect through the ingress and join the room; retries while no pod answers."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    self.ws = await self.session.ws_connect(
                        f"{self.url}?id={self.name}", headers={"Host": HOST}, heartbeat=None
                    )
                    break
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.2)
        self._reader = asyncio.create_task(self._read(self.ws))
        await self.call("join", {"room": ROOM})
        self._online.set()

    async def call(self, event: str, payload: Any, timeout: float = 10.0) -> Any:
        assert self.ws is not None
        callback = f"{event}-{next(_ids)}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[callback] = fut
        try:
            await self.ws.send_str(
                json.dumps({"event": event, "payload": payload, "callbackId": callback})
            )
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._waiters.pop(callback, None)

    async def say(self, seq: int) -> bool:
        """Say message ``seq`` in the room; True (and recorded) when the server acked it."""
        if not self._online.is_set():
            return False
        try:
            reply = await self.call("say", {"room": ROOM, "text": f"{self.name}:{seq}"}, timeout=5)
        except (ConnectionError, TimeoutError, aiohttp.ClientError, RuntimeError):
            return False  # the connection is going away: not acked, may be lost
        if isinstance(reply, dict) and reply.get("ok"):
            self.acked.add(seq)
            return True
        return False

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "callbackId" in data and "event" not in data:
                fut = self._waiters.get(data["callbackId"])
                if fut is not None and not fut.done():
                    fut.set_result(data.get("payload"))
            elif data.get("event") == "said":
                sender, _, seq = data["payload"]["text"].rpartition(":")
                self.heard.setdefault(sender, set()).add(int(seq))
            elif data.get("event") == "direct":
                self.directs.append(data["payload"])
            elif data.get("event") == "announcement":
                self.announcements.append(data["payload"])
        self._online.clear()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))
        if self._closing:
            return
        self.close_codes.append(ws.close_code)
        self.continuous = False
        if ws.close_code == 1012:  # the node is going away: reconnect through the ingress
            self.reconnects += 1
            asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self.connect()

    def state(self) -> str:
        online = "online" if self._online.is_set() else "offline"
        return f"{self.name}: {online}, acked {len(self.acked)}, closes {self.close_codes}"

    async def wait_online(self, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            await self._online.wait()

    async def close(self) -> None:
        self._closing = True
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


async def chatter(clients: list[Client], stop: asyncio.Event, interval: float = 0.05) -> int:
    """Every client says numbered messages until ``stop``; returns how many were sent."""
    seq = itertools.count()
    sent = 0
    while not stop.is_set():
        n = next(seq)
        await asyncio.gather(*(c.say(n) for c in clients))
        sent += len(clients)
        await asyncio.sleep(interval)
    return sent


def missing(observers: list[Client], senders: list[Client]) -> dict[str, dict[str, list[int]]]:
    """Acked messages some observer never heard: observer -> sender -> seqs."""
    out: dict[str, dict[str, list[int]]] = {}
    for o in observers:
        for s in senders:
            lost = sorted(s.acked - o.heard.get(s.name, set()))
            if lost:
                out.setdefault(o.name, {})[s.name] = lost
    return out
