"""A TCP load balancer on loopback that routes new connections to ready backends only, as a
Kubernetes Service does with its endpoints: a backend whose ``/readyz`` is not 200 gets no new
connections (existing ones are left alone)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Backend:
    port: int
    readyz: str
    ready: bool = False


@dataclass
class Balancer:
    backends: list[Backend] = field(default_factory=list)
    port: int = 0
    routed: dict[int, int] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _poller: asyncio.Task[None] | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._poller = asyncio.create_task(self._poll())

    def add(self, backend: Backend) -> None:
        self.backends.append(backend)

    async def wait_ready(self, backend: Backend, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not backend.ready:
                await asyncio.sleep(0.05)

    async def _poll(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                for backend in list(self.backends):
                    try:
                        async with session.get(backend.readyz) as resp:
                            backend.ready = resp.status == 200
                    except aiohttp.ClientError:
                        backend.ready = False
                await asyncio.sleep(0.1)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ready = [b for b in self.backends if b.ready]
        if not ready:
            writer.close()
            return
        backend = ready[next(self._turn) % len(ready)]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend.port)
        except OSError:
            writer.close()
            return
        self.routed[backend.port] = self.routed.get(backend.port, 0) + 1
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._poller is not None:
            await asyncio.gather(self._poller, return_exceptions=True)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()
