"""The hot path of a cluster link: one hiredis publisher per shard master.

redis-py's cluster pipeline costs about 22 µs of client CPU per command here, our pipelined
hiredis publisher about 3 µs (``python -m bench.cluster_links``, docs/benchmarks.md), so the
cluster link keeps redis-py for what it does well - the slot map, its refresh and ``PUBSUB
SHARDNUMSUB`` - and sends every command itself, to the master that owns the command's slot:
``SPUBLISH`` by its channel, keyed commands by their first key.

- Commands for one shard go out on one connection, in the order they are sent (one
  :class:`ShardPublisher` per master, batching every command of a loop turn); what may be sent
  when is :mod:`wsfleet.bus.cluster_order`'s decision.
- Each command travels wrapped with its own future. Its reply, or the loss of the shard's
  connection, is reported to the link with the :class:`~wsfleet.bus.cluster_order.Entry` it was
  sent for (:meth:`ShardPublishers.send`); an entry resent after an ``ASK`` is preceded by
  ``ASKING`` on the same connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from wsfleet.bus.broker import PUBLISHER, BrokerLink, Command, LinkTimings
from wsfleet.bus.cluster_order import Address, Entry
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.redis_py import ClusterNode
from wsfleet.bus.slots import SLOTS, key_slot

log = logging.getLogger("wsfleet.bus")

REDIRECTS: Final = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")
"""Error replies that mean "not here, not now": the command runs again, not fails."""
_KEYLESS: Final = frozenset(
    {"PING", "PUBSUB", "CONFIG", "SCRIPT", "INFO", "CLUSTER", "CLIENT", "HELLO", "AUTH", "ASKING"}
)
"""Commands without a key (any master answers); every other command has its key first, except
``EVAL`` / ``EVALSHA`` (after the script and the key count)."""


def command_slot(args: tuple[Any, ...]) -> int:
    """The hash slot a command must run on (0 for commands without a key, such as PING)."""
    name = str(args[0]).upper() if args else ""
    key: Any = None
    if name in ("EVAL", "EVALSHA"):
        if len(args) > 3 and int(args[2]) > 0:
            key = args[3]
    elif name not in _KEYLESS and len(args) > 1:
        key = args[1]
    if key is None:
        return 0
    return key_slot(key.encode() if isinstance(key, str) else bytes(key))


def slot_owners(slots: Mapping[int, Sequence[ClusterNode]]) -> list[Address | None]:
    """The master of every slot (from redis-py's slot map), read once per refresh instead of
    once per command."""
    owners: list[Address | None] = [None] * SLOTS
    addresses: dict[str, Address] = {}
    for slot, nodes in slots.items():
        if nodes and 0 <= slot < SLOTS:
            node = nodes[0]
            owners[slot] = addresses.setdefault(node.name, (node.host, int(node.port)))
    return owners


def sharded(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return ("SPUBLISH", *args[1:]) if args and args[0] == "PUBLISH" else args


def ask_address(error: BaseException) -> Address | None:
    """The importing node of an ``ASK <slot> <host>:<port>`` error (None if it is not one)."""
    parts = str(error).split()
    if len(parts) != 3 or parts[0] != "ASK":
        return None
    host, _, port = parts[2].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


class ShardPublisher(RedisLink):
    """The publisher half of a :class:`RedisLink` on one shard master (no subscriber)."""

    def start(self) -> None:
        if self.closed or self._tasks:
            return
        self._tasks = {
            asyncio.create_task(self._publisher_loop(), name=f"wsfleet-shard-pub-{self.key}"),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-shard-ping-{self.key}"),
        }


Replied = Callable[[Entry, "asyncio.Future[Any]"], None]
Lost = Callable[[list[Entry], BaseException], None]


class ShardPublishers:
    """One :class:`ShardPublisher` per master, and the entries in flight on them."""

    def __init__(
        self,
        template: RedisNode,
        timings: LinkTimings,
        on_reply: Replied,
        on_lost: Lost,
        on_health: Callable[[], None],
        on_drained: Callable[[], None],
    ) -> None:
        self.template = template
        self.timings = timings
        self._on_reply = on_reply
        self._on_lost = on_lost
        self._on_health = on_health
        self._on_drained = on_drained
        self.shards: dict[Address, ShardPublisher] = {}
        self.inflight: dict[asyncio.Future[Any], Entry] = {}
        self._lost: list[tuple[list[Entry], BaseException]] = []
        self.batches = 0

    @property
    def healthy(self) -> bool:
        return bool(self.shards) and all(p.publisher_healthy for p in self.shards.values())

    @property
    def any_sendable(self) -> bool:
        return any(p.publisher_healthy for p in self.shards.values())

    def sendable(self, address: Address) -> bool:
        publisher = self.shards.get(address)
        return publisher is not None and publisher.publisher_healthy

    def set_masters(self, masters: set[Address]) -> list[ShardPublisher]:
        """Open publishers to new masters; return the ones to close (no longer masters)."""
        gone = [self.shards.pop(a) for a in list(self.shards) if a not in masters]
        for host, port in masters - set(self.shards):
            node = RedisNode(
                host=host,
                port=port,
                username=self.template.username,
                password=self.template.password,
                tls=self.template.tls,
            )
            publisher = ShardPublisher(node, _ShardEvents(self), timings=self.timings)
            self.shards[(host, port)] = publisher
            publisher.start()
        return gone

    def send(self, entry: Entry, address: Address) -> bool:
        """Send ``entry`` to ``address`` (after ``ASKING`` if ``entry.ask``); False when that
        master has no connected publisher."""
        publisher = self.shards.get(address)
        if publisher is None or not publisher.publisher_healthy:
            return False
        if entry.ask is not None:
            publisher.submit(Command(("ASKING",), None, pinned=True, retry=False))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inflight[future] = entry
        future.add_done_callback(self._answered)
        publisher.submit(Command(sharded(entry.command.args), future, pinned=True, retry=False))
        return True

    def _answered(self, future: asyncio.Future[Any]) -> None:
        entry = self.inflight.pop(future, None)
        if entry is None or future.cancelled():
            return
        self._on_reply(entry, future)
        if not self.inflight:
            self._on_drained()

    def failed(self, inner: list[Command], error: BaseException) -> None:
        """A shard's publisher handed ``inner`` back (its connection failed, or its queue was
        full). Reported on the next loop turn: this may run inside :meth:`send`."""
        entries = []
        for command in inner:
            future = command.future
            if future is not None:
                entry = self.inflight.pop(future, None)
                future.cancel()
                if entry is not None:
                    entries.append(entry)
        if entries:
            if not self._lost:
                asyncio.get_running_loop().call_soon(self._report_lost)
            self._lost.append((entries, error))

    def _report_lost(self) -> None:
        lost, self._lost = self._lost, []
        for entries, error in lost:
            self._on_lost(entries, error)

    def health_changed(self, role: str) -> None:
        if role == PUBLISHER:
            self._on_health()

    def changed(self) -> None:
        self.batches = sum(p.batches for p in self.shards.values())
        if not self.inflight:
            self._on_drained()

    def take_all(self) -> list[Entry]:
        """Everything in flight or lost and not reported yet (the link is closing)."""
        entries = list(self.inflight.values())
        entries.extend(e for group, _ in self._lost for e in group)
        self._lost.clear()
        for future in list(self.inflight):
            future.cancel()
        self.inflight.clear()
        return entries


class _ShardEvents:
    """What a shard's publisher reports, for :class:`ShardPublishers`."""

    __slots__ = ("owner",)

    def __init__(self, owner: ShardPublishers) -> None:
        self.owner = owner

    def on_link_message(self, link: BrokerLink, channel: bytes, data: bytes) -> None:
        pass

    def on_link_health(
        self, link: BrokerLink, role: str, healthy: bool, event: str, error: str | None
    ) -> None:
        self.owner.health_changed(role)

    def on_link_failed(
        self, link: BrokerLink, commands: list[Command], error: BaseException
    ) -> None:
        self.owner.failed(commands, error)

    def on_link_changed(self, link: BrokerLink) -> None:
        self.owner.changed()
