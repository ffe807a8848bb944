"""The broker interface: what the bus needs from one broker node, and what it hears back.

The bus (:mod:`wsfleet.bus.bus`) never touches a socket. It talks to each broker node through a
:class:`BrokerLink` and hears from it only through the narrow :class:`BrokerEventHandler` it
passes in (the shape of centrifuge's ``Broker`` / ``BrokerEventHandler``). Two implementations:

- :class:`wsfleet.bus.redis_link.RedisLink`: one Redis node over RESP (``hiredis``), a
  publisher connection that pipelines the commands of one loop turn in one write (sooner, by
  :data:`FLUSH_BYTES`, when a long synchronous caller keeps the turn going), and a
  subscriber connection.
- :class:`wsfleet.bus.memory.MemoryLink`: a link to a process-local
  :class:`~wsfleet.bus.memory.MemoryBroker` (addresses ``memory://<name>``) with the ordering of
  one Redis node, for several nodes in one process and for tests that kill, freeze and restart a
  broker in milliseconds.

**Commands.** The command vocabulary is Redis's: a :class:`Command` carries the arguments of one
Redis command (``PUBLISH``, ``PUBSUB NUMSUB``, ``PING``, ``GET`` and the registry's and socket
directory's ``EVAL`` scripts). A broker that is not Redis answers that subset (the memory broker
runs a Python twin of each script, see :mod:`wsfleet.bus.scripts`). Commands submitted to one link
run in submission order and their futures resolve in that order; a command whose link fails is
handed back with :meth:`BrokerEventHandler.on_link_failed` (the bus re-routes it) unless it is
``pinned``.

**Messages.** ``set_channels`` is the whole wanted set, ``update_channels`` what changed in it
(one room at a time: its cost must not grow with the channels held); the link subscribes the
difference, replays it after every reconnect (``marker`` last, so its confirmation means every
other channel is in place), confirms each channel (:meth:`is_subscribed`,
:meth:`wait_subscribed`) and hands each message to
:meth:`BrokerEventHandler.on_link_message` synchronously, in the broker's order.

**Later brokers behind the same interface.**

- *Redis Streams (recovery).* A stream-backed link keeps this interface: ``PUBLISH`` becomes
  ``XADD`` with ``MAXLEN`` on the link (the bus still encodes once and batches per loop turn), and
  the subscriber side reads with ``XREAD BLOCK`` from the last id it delivered; the ids it hands
  over would go in an optional ``position`` argument of ``on_link_message`` so that a consumer can
  ask for recovery from a position. ``is_subscribed`` keeps meaning "every wanted stream is read".
- *Redis Cluster sharded pub/sub* (:mod:`wsfleet.bus.cluster_link`). The whole cluster is one
  :class:`BrokerLink` that routes by hash slot itself: ``PUBLISH`` becomes ``SPUBLISH`` on the
  master owning the channel, ``set_channels`` becomes ``SSUBSCRIBE`` on the shards the channels
  hash to. A ``MOVED`` reply or a lost shard makes the publisher unhealthy until the slot map
  is refreshed and the bus admitted the link again; the link holds the commands that came back
  in their slot's order (:mod:`wsfleet.bus.cluster_order`) and sends them first.
- *Sentinel* (:mod:`wsfleet.bus.sentinel`). A :class:`RedisLink` whose ``node`` names Sentinels
  and a master resolves the master before each (re)connect and reconnects on
  ``+switch-master``; failover is a reconnect, reported through ``on_link_health`` like any other.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from wsfleet.bus.nodes import RedisNode
from wsfleet.protocol.errors import WsfleetError

PUBLISHER: Final = "publisher"
SUBSCRIBER: Final = "subscriber"


class LinkError(WsfleetError):
    """A command could not be run on a broker node."""


@dataclass(slots=True)
class Command:
    """A command for a link's publisher. ``future`` (optional) gets the reply or the error."""

    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None = None
    routing_key: str = ""
    attempts: int = 0
    retry: bool = True
    pinned: bool = False
    """Pinned commands must run on this link (probes, registry writes): never re-routed."""
    keyed: bool = False
    """Keyed commands (socket directory) are routed by rendezvous hash, whatever the strategy."""
    packed: bytes | None = None
    """The command in RESP, once a link encoded it (on submit: its length is what it holds in
    the queue), written as is by any connection it is sent on."""


FLUSH_BYTES: Final = 32 * 1024
"""A link writes its pending commands as soon as they hold this many bytes, without waiting for
the end of the loop turn: a handler that publishes in a long synchronous loop gets its messages
out while it runs (docs/benchmarks.md, "S3 latency: flush by size and loop turn")."""
FLUSH_DELAY: Final = 0.001
"""Seconds the oldest pending command may wait for the end of the loop turn: a command submitted
later than that writes the batch at once, however little it holds (a loop that does much work
per publish)."""


def command_size(command: Command) -> int:
    """Bytes of a command's arguments (what it holds in a buffer)."""
    size = 0
    for arg in command.args:  # a plain loop: this runs for every command submitted
        kind = type(arg)
        if kind is bytes or kind is str:
            size += len(arg)
    return size


@dataclass(slots=True)
class LinkTimings:
    connect_timeout: float = 2.0
    command_timeout: float = 2.0
    ping_interval: float = 5.0
    ping_timeout: float = 2.0
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    queue_max_bytes: int = 16 * 1024 * 1024
    """Bytes a link's publish queue holds while its connection is paused or connecting; beyond
    it new commands are handed back to the bus (policy ``hand-back``: re-routed to another link
    or buffered, and failed after ``max_publish_attempts``)."""
    held_max_age: float = 30.0
    """Seconds a cluster link holds a command that came back (``MOVED``, a failover) for its
    slot's order before failing it (the bus sets its ``outage_buffer_max_age``)."""
    flush_bytes: int = FLUSH_BYTES
    """Pending bytes that make the publisher write at once instead of at the end of the turn."""
    flush_delay: float = FLUSH_DELAY
    """Seconds after which the next command submitted makes the publisher write at once."""
    tls: ssl.SSLContext | None = None
    """The client context of ``rediss://`` nodes (None: the system's defaults)."""


@dataclass(slots=True)
class LinkHealth:
    publisher: bool = False
    subscriber: bool = False
    reconnects: int = 0
    last_error: str | None = None
    latency: float = 0.0

    def update(self, role: str, healthy: bool, error: str | None) -> bool:
        """Record ``role``'s health; True when it changed."""
        if error is not None:
            self.last_error = error
        if role == PUBLISHER:
            changed, self.publisher = self.publisher != healthy, healthy
        else:
            changed, self.subscriber = self.subscriber != healthy, healthy
        return changed


class BrokerEventHandler(Protocol):
    """Everything a link reports to its owner; called synchronously on the event loop."""

    def on_link_message(self, link: BrokerLink, channel: bytes, data: bytes) -> None:
        """A message on a subscribed channel, in the broker's order."""

    def on_link_health(
        self, link: BrokerLink, role: str, healthy: bool, event: str, error: str | None
    ) -> None:
        """``role`` (:data:`PUBLISHER` or :data:`SUBSCRIBER`) became healthy or not."""

    def on_link_failed(
        self, link: BrokerLink, commands: list[Command], error: BaseException
    ) -> None:
        """Commands sent or queued on ``link`` that got no reply (its connection failed)."""

    def on_link_changed(self, link: BrokerLink) -> None:
        """Subscriptions were confirmed, or the link has nothing in flight any more."""


class BrokerLink(Protocol):
    """One broker node: a publisher that runs commands and a subscriber that reads channels."""

    node: RedisNode
    key: str
    publishable: bool
    """The operator's intent: False while a hot-added link warms up or a removed one drains."""
    admitted: bool
    """Set by the bus once the publisher is connected and every node listens on this broker."""
    marker: bytes | None
    """Channel subscribed last after a (re)connect."""
    health: LinkHealth
    publisher_connects: int
    batches: int

    @property
    def latency(self) -> float: ...
    @property
    def publisher_healthy(self) -> bool: ...
    @property
    def keys_reachable(self) -> bool:
        """Pinned commands on keys (lease refreshes, registry writes) can run now. As
        :attr:`publisher_healthy`, except on a Redis Cluster: there each key's own master must
        answer, so one shard failing over does not stop the others' leases."""

    @property
    def subscriber_healthy(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def in_flight(self) -> int:
        """Commands queued or sent and not answered yet."""

    def start(self) -> None: ...

    async def aclose(self) -> None:
        """Disconnect; commands queued or unanswered are handed back through ``on_link_failed``."""

    def submit(self, command: Command) -> None:
        """Queue ``command``; it is written with everything else submitted in this loop turn, or
        at once when the commands pending reach ``timings.flush_bytes`` or the oldest of them
        has waited ``timings.flush_delay``."""

    def take_queued(self) -> list[Command]:
        """Remove and return the queued commands that may run elsewhere (not pinned)."""

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        """Run one pinned command on this node and return its reply."""

    def set_channels(self, desired: set[bytes]) -> None:
        """The whole wanted set (when the link joins the bus)."""

    def update_channels(self, added: set[bytes], removed: set[bytes]) -> None:
        """What changed in the wanted set since: the link's work is in proportion to it."""

    def is_subscribed(self, channels: Iterable[bytes]) -> bool: ...
    async def wait_subscribed(self, channels: Iterable[bytes]) -> None: ...
    def force_resubscribe(self) -> None:
        """Drop the subscriber connection; it reconnects and replays every channel."""


def take_unpinned(queue: deque[Command]) -> list[Command]:
    """Remove and return the commands of ``queue`` that may run elsewhere, in order."""
    taken = [c for c in queue if not c.pinned]
    if taken:
        kept = [c for c in queue if c.pinned]
        queue.clear()
        queue.extend(kept)
    return taken


MessageCallback = Callable[[BrokerLink, bytes, bytes], None]
HealthCallback = Callable[[BrokerLink, str, bool, str, str | None], None]
FailedCallback = Callable[[BrokerLink, list[Command], BaseException], None]


class CallbackHandler:
    """A :class:`BrokerEventHandler` made of plain callbacks (tests, tools)."""

    __slots__ = ("on_link_failed", "on_link_health", "on_link_message")

    def __init__(
        self, on_message: MessageCallback, on_health: HealthCallback, on_failed: FailedCallback
    ) -> None:
        self.on_link_message = on_message
        self.on_link_health = on_health
        self.on_link_failed = on_failed

    def on_link_changed(self, link: BrokerLink) -> None:
        pass


def numsub_counts(reply: Any) -> dict[str, int]:
    """``PUBSUB NUMSUB`` answers a flat list in RESP2 and a map in RESP3."""
    if isinstance(reply, dict):
        pairs = list(reply.items())
    elif isinstance(reply, list):
        pairs = list(zip(reply[::2], reply[1::2], strict=False))
    else:
        return {}
    out: dict[str, int] = {}
    for channel, count in pairs:
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        out[name] = int(count)
    return out
