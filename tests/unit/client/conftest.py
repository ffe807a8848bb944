"""Fakes for the connector's unit tests: a scripted transport, a manual clock, an event recorder.

No test here waits on real time: time only moves with ``clock.advance()``, and tests await
observable effects (an attempt, a sent frame, an event) with a short real-time safety bound that
is only reached when a test fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wsfleet.client import Connector, HandshakeError, TransportError
from wsfleet.client.testing import ManualClock
from wsfleet.client.transport import (
    Incoming,
    IncomingBinary,
    IncomingText,
    LinkFailed,
    RemoteClosed,
)

BOUND = 2.0  # real seconds; only reached when a test fails


class FakeLink:
    """An open connection; the test plays the server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: asyncio.Queue[str] = asyncio.Queue()
        self.sent_log: list[str] = []
        self._incoming: asyncio.Queue[Incoming] = asyncio.Queue()
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    # the Link protocol
    async def send_text(self, data: bytes) -> None:
        if self.closed.done():
            raise TransportError("link closed")
        text = data.decode()
        self.sent_log.append(text)
        self.sent.put_nowait(text)

    async def receive(self) -> Incoming:
        return await self._incoming.get()

    async def close(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result((code, reason))

    # the test's side
    def push(self, text: str) -> None:
        self._incoming.put_nowait(IncomingText(text))

    def push_binary(self, data: bytes) -> None:
        self._incoming.put_nowait(IncomingBinary(data))

    def server_close(self, code: int, reason: str = "") -> None:
        self._incoming.put_nowait(RemoteClosed(code, reason))

    def fail(self, error: BaseException) -> None:
        self._incoming.put_nowait(LinkFailed(error))

    async def next_sent(self) -> str:
        return await asyncio.wait_for(self.sent.get(), BOUND)

    async def wait_closed(self) -> tuple[int, str]:
        return await asyncio.wait_for(asyncio.shield(self.closed), BOUND)


class Attempt:
    """One call of ``transport.open``; the test accepts or refuses it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.future: asyncio.Future[FakeLink] = asyncio.get_running_loop().create_future()

    def accept(self) -> FakeLink:
        link = FakeLink(self.url)
        self.future.set_result(link)
        return link

    def refuse(self, error: BaseException | None = None) -> None:
        self.future.set_exception(error or HandshakeError("connection refused"))


class FakeTransport:
    def __init__(self) -> None:
        self.attempts: asyncio.Queue[Attempt] = asyncio.Queue()
        self.opened = 0
        self.closed = False

    async def open(self, url: str, *, connect_timeout: float) -> FakeLink:
        attempt = Attempt(url)
        self.opened += 1
        self.attempts.put_nowait(attempt)
        return await attempt.future

    async def aclose(self) -> None:
        self.closed = True

    async def next_attempt(self) -> Attempt:
        return await asyncio.wait_for(self.attempts.get(), BOUND)


class Recorder:
    """Records the connector's system events in order (``message`` only if asked)."""

    EVENTS = ("open", "close", "error", "reconnect", "repeat-limit", "ping", "pong", "pong-timeout")

    def __init__(self, connector: Connector, *, messages: bool = False) -> None:
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        for name in (*self.EVENTS, "message") if messages else self.EVENTS:
            connector.on(name, self._listener(name))  # type: ignore[arg-type]

    def _listener(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.log.append((name, args))
            self._queue.put_nowait((name, args))

        return record

    async def next(self) -> tuple[str, tuple[Any, ...]]:
        return await asyncio.wait_for(self._queue.get(), BOUND)

    async def expect(self, name: str) -> tuple[Any, ...]:
        """The next recorded event must be ``name``; returns its arguments."""
        got, args = await self.next()
        assert got == name, f"expected {name!r}, got {got!r}{args!r}; log={self.log!r}"
        return args

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def pending(self) -> list[str]:
        return [name for name, _ in list(self._queue._queue)]  # type: ignore[attr-defined]


class Opened:
    """A connector whose first connection the test accepted, with its link and recorder."""

    def __init__(self, connector: Connector, link: FakeLink, rec: Recorder) -> None:
        self.connector = connector
        self.link = link
        self.rec = rec

    async def sync(self) -> None:
        """Return once the connector has handled every frame pushed so far (frames are
        handled in order, so a marker event pushed last proves it)."""
        stream = self.connector.events("__sync__")
        try:
            self.link.push('{"event":"__sync__","payload":null}')
            await asyncio.wait_for(stream.__anext__(), BOUND)
        finally:
            stream.close()


@pytest.fixture
def open_connector(
    make_connector: Callable[..., Connector], transport: FakeTransport
) -> Callable[..., Any]:
    async def open_(url: str = "ws://test/ws", *, messages: bool = False, **options: Any) -> Opened:
        connector = make_connector(url, **options)
        rec = Recorder(connector, messages=messages)
        await connector.connect()
        link = (await transport.next_attempt()).accept()
        await rec.expect("open")
        return Opened(connector, link, rec)

    return open_


@pytest.fixture
def step() -> Callable[[Callable[[], object]], Any]:
    """``await step(fn)``: run ``fn`` in a new task, i.e. after every task scheduled before it
    has reached its next suspension point (the event loop runs ready tasks in order)."""

    async def run(fn: Callable[[], object]) -> None:
        async def call() -> None:
            fn()

        await asyncio.ensure_future(call())

    return run


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
async def make_connector(
    clock: ManualClock, transport: FakeTransport
) -> AsyncIterator[Callable[..., Connector]]:
    made: list[Connector] = []

    def make(url: str = "ws://test/ws", **options: Any) -> Connector:
        connector = Connector(url, clock=clock, transport=transport, **options)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await asyncio.wait_for(connector.aclose(), BOUND)


@pytest.fixture
def recorder() -> Callable[..., Recorder]:
    return Recorder


@pytest.fixture
def bound() -> float:
    return BOUND
