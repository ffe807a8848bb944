"""A process-local broker with the ordering of one Redis node (``memory://<name>`` addresses).

Several buses (several wsfleet nodes) in one process that list the same ``memory://name`` share
one :class:`MemoryBroker`. It keeps Redis's guarantees that the bus relies on: the commands of one
connection run in order and their replies come back in that order; a subscriber connection sees
subscription confirmations and messages in the order the broker produced them; ``PUBSUB NUMSUB``
counts confirmed subscriber connections. Replies and messages are delivered on a later loop turn
(``call_soon``), like bytes read from a socket, never inside the caller's stack.

Tests break it on purpose: :meth:`MemoryBroker.kill` drops every connection and the data (a
crash; connects fail until :meth:`~MemoryBroker.restart`), :meth:`~MemoryBroker.freeze` keeps
connections open but answers and delivers nothing (a hung node) until
:meth:`~MemoryBroker.thaw`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from wsfleet.bus.broker import Command, LinkError
from wsfleet.bus.memory_store import MemoryKeyspace, as_bytes, run_command
from wsfleet.clock import Clock, LoopClock

__all__ = ["MemoryBroker", "MemoryConnection", "broker", "forget_brokers"]


class MemoryConnection:
    """One client connection to a :class:`MemoryBroker` (a publisher or a subscriber)."""

    __slots__ = ("_events", "_scheduled", "broker", "closed", "owner", "subscribed")

    def __init__(self, broker: MemoryBroker, owner: Any) -> None:
        self.broker = broker
        self.owner = owner
        """Receives ``memory_replies``, ``memory_push`` and ``memory_lost`` calls."""
        self.subscribed: set[bytes] = set()
        self.closed = False
        self._events: deque[tuple[str, Any]] = deque()
        self._scheduled = False

    def post(self, kind: str, payload: Any) -> None:
        """Queue an event for the owner; delivered in order on a later loop turn."""
        self._events.append((kind, payload))
        self.resume()

    def resume(self) -> None:
        """Schedule the delivery of what is queued (after a thaw)."""
        if self._events and not self._scheduled and not self.broker.frozen:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.deliver)

    def deliver(self) -> None:
        self._scheduled = False
        events = self._events
        owner = self.owner
        while events and not self.closed and not self.broker.frozen:
            kind, payload = events.popleft()
            if kind == "replies":
                owner.memory_replies(self, payload)
            elif kind == "push":
                owner.memory_push(self, payload)
            else:
                owner.memory_lost(self, payload)

    def close(self) -> None:
        """Client side: disconnect (nothing more is delivered)."""
        if not self.closed:
            self.closed = True
            self.broker.detach(self)


class MemoryBroker:
    """One in-memory "Redis node": channels, a keyspace, and hooks to break it."""

    def __init__(self, name: str, clock: Clock | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or LoopClock()
        self.keyspace = MemoryKeyspace(lambda: self.clock.now() * 1000, self.publish)
        self.running = True
        self.frozen = False
        self.connects = 0
        self._channels: dict[bytes, set[MemoryConnection]] = {}
        self._connections: set[MemoryConnection] = set()
        self._held: list[tuple[MemoryConnection, list[Command]]] = []

    def __repr__(self) -> str:
        return f"<MemoryBroker {self.name}>"

    # -- clients ------------------------------------------------------------------------------

    def connect(self, owner: Any) -> MemoryConnection:
        if not self.running:
            raise ConnectionRefusedError(f"memory://{self.name} is down")
        conn = MemoryConnection(self, owner)
        self._connections.add(conn)
        self.connects += 1
        return conn

    @property
    def client_count(self) -> int:
        """Open connections (what ``CLIENT LIST`` would count)."""
        return len(self._connections)

    def detach(self, conn: MemoryConnection) -> None:
        """Forget ``conn`` and its subscriptions (it closed, or the broker died)."""
        self._connections.discard(conn)
        for channel in conn.subscribed:
            listeners = self._channels.get(channel)
            if listeners is not None:
                listeners.discard(conn)
                if not listeners:
                    del self._channels[channel]
        conn.subscribed.clear()

    def run(self, conn: MemoryConnection, commands: list[Command]) -> None:
        """Run ``commands`` in order; their replies go back to ``conn`` together. Raises
        ``TypeError`` before running anything when an argument cannot be encoded."""
        encoded = [[as_bytes(arg) for arg in command.args] for command in commands]
        if self.frozen:
            self._held.append((conn, commands))
            return
        self._run(conn, encoded)

    def _run(self, conn: MemoryConnection, encoded: list[list[bytes]]) -> None:
        numsub = self.numsub
        replies = [run_command(self.keyspace, args, numsub) for args in encoded]
        conn.post("replies", replies)

    def subscribe(self, conn: MemoryConnection, channels: Iterable[bytes]) -> None:
        for channel in channels:
            conn.subscribed.add(channel)
            self._channels.setdefault(channel, set()).add(conn)
            conn.post("push", (b"subscribe", channel, None))

    def unsubscribe(self, conn: MemoryConnection, channels: Iterable[bytes]) -> None:
        for channel in channels:
            conn.subscribed.discard(channel)
            listeners = self._channels.get(channel)
            if listeners is not None:
                listeners.discard(conn)
                if not listeners:
                    del self._channels[channel]
            conn.post("push", (b"unsubscribe", channel, None))

    def publish(self, channel: bytes, data: bytes) -> int:
        listeners = self._channels.get(channel)
        if not listeners:
            return 0
        for conn in listeners:
            conn.post("push", (b"message", channel, data))
        return len(listeners)

    def numsub(self, channel: bytes) -> int:
        return len(self._channels.get(channel, ()))

    # -- faults -------------------------------------------------------------------------------

    def kill(self) -> None:
        """Crash: every connection is lost, the data is gone, connects fail until restart."""
        self.running = False
        self.frozen = False
        self._held.clear()
        for conn in list(self._connections):
            self.detach(conn)
            conn.post("lost", ConnectionResetError(f"memory://{self.name} was killed"))
        self._channels.clear()
        self.keyspace.clear()

    def restart(self) -> None:
        """Come back empty (no data, no subscriptions), accepting connections again."""
        self.running = True

    def freeze(self) -> None:
        """Hang: connections stay open, nothing is answered or delivered until :meth:`thaw`."""
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False
        held, self._held = self._held, []
        for conn, commands in held:  # run even if the client gave up: Redis would, too
            self._run(conn, [[as_bytes(arg) for arg in c.args] for c in commands])
        for conn in list(self._connections):
            conn.resume()


_BROKERS: dict[str, MemoryBroker] = {}


def broker(name: str, clock: Clock | None = None) -> MemoryBroker:
    """The process's broker called ``name`` (created on first use)."""
    found = _BROKERS.get(name)
    if found is None:
        found = _BROKERS[name] = MemoryBroker(name, clock)
    elif clock is not None:
        found.clock = clock
    return found


def forget_brokers() -> None:
    """Drop every broker of the process (between tests)."""
    _BROKERS.clear()


def reply_error(reply: Any) -> LinkError | None:
    return reply if isinstance(reply, LinkError) else None
