"""A whole Redis Cluster (7.0+) as one :class:`~wsfleet.bus.broker.BrokerLink`, on sharded pub/sub.

- **Topology** is redis-py's (``redis.asyncio.cluster.RedisCluster``): the slot map, ``MOVED`` /
  ``ASK`` and refreshes. The link refreshes it whenever a shard's connection fails or a shard
  drops a subscription (a slot moved), and again on a timer while a shard it needs is down.
- **Publishing** (:mod:`wsfleet.bus.cluster_publish`): our hiredis publisher per master.
  ``PUBLISH`` becomes ``SPUBLISH`` (the shard owning the channel's slot); keyed commands
  (``EVAL``, ``GET``, ``SET``) go to the shard owning their keys.
- **Order across redirects** (:mod:`wsfleet.bus.cluster_order`). A command that comes back
  (``MOVED``, ``CLUSTERDOWN``, ``TRYAGAIN``, a lost shard) is held by the link in its slot's
  place, and so is every later command for that slot; the publisher reports unhealthy, the slot
  map is refreshed, the bus admits the link again once every node listens on the new shards, and
  then the held commands go out, oldest first, before anything newer. An ``ASK`` resends that
  one command to the importing node after ``ASKING`` (the slot map stays). Held commands are
  bounded (``queue_max_bytes``, policy ``hand-back``) and fail after ``held_max_age``. Pinned
  commands (probes, registry writes, lease refreshes) are not held: they go to their slot's
  master whenever its publisher is connected, even while another shard fails over, and fail on
  a redirect, as on any link.
- **Subscribing.** One sharded subscriber (``SSUBSCRIBE``, our hiredis connection) per shard
  that owns at least one wanted channel, and none for the others: a node connects to the shards
  its inbox, its room namespaces and the four fleet-wide channels hash to.
- **Health.** The publisher is healthy once the slot map is known and every master answered a
  ``PING``; the subscriber once every shard it needs is connected.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Any

from wsfleet.bus.broker import (
    PUBLISHER,
    SUBSCRIBER,
    BrokerEventHandler,
    Command,
    LinkError,
    LinkHealth,
    LinkTimings,
)
from wsfleet.bus.cluster_order import REFUSED, Entry, SlotOrder
from wsfleet.bus.cluster_publish import (
    REDIRECTS,
    ShardPublishers,
    ask_address,
    command_slot,
    slot_owners,
)
from wsfleet.bus.cluster_shards import ShardSubscribers, shardnumsub_count
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_py import (
    ClusterNode,
    NoBackoff,
    RedisCluster,
    RedisClusterException,
    RedisError,
    Retry,
)
from wsfleet.bus.signals import Pulse
from wsfleet.bus.slots import SLOTS
from wsfleet.bus.topology_nodes import addresses
from wsfleet.clock import LoopClock

log = logging.getLogger("wsfleet.bus")

Address = tuple[str, int]


class ClusterLink:
    """A Redis Cluster (``redis+cluster://``)."""

    def __init__(
        self, node: RedisNode, handler: BrokerEventHandler, *, timings: LinkTimings | None = None
    ) -> None:
        self.node = node
        self.key = node.key
        self.timings = timings or LinkTimings()
        self._handler = handler
        self.health = LinkHealth()
        self.publishable = True
        self._admitted = False
        self.marker: bytes | None = None
        self.publisher_connects = 0
        self.batches = 0
        self.refreshes = 0
        self.redirects = 0
        """Commands that came back (``MOVED``, ``CLUSTERDOWN``, ``TRYAGAIN``, a lost shard)."""
        self.asks = 0
        """Commands resent to an importing node after an ``ASK``."""
        self._rc = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in addresses(node)],
            username=node.username,
            password=node.password,
            ssl=node.tls,
            socket_timeout=self.timings.command_timeout,
            socket_connect_timeout=self.timings.connect_timeout,
            retry=Retry(NoBackoff(), 1),  # the bus retries, after a refresh, in order
        )
        self._queue: deque[Command] = deque()
        """Pinned commands submitted while the slot map or a master is not known."""
        self._clock = LoopClock()
        self._publishers = ShardPublishers(
            node,
            self.timings,
            self._replied,
            self._lost,
            self._publishers_health,
            self._drained,
        )
        self._order = SlotOrder(
            self._slot_owner, self._send, max_bytes=self.timings.queue_max_bytes
        )
        self._refresh = asyncio.Event()
        self._ready = False
        self._subs = ShardSubscribers(
            self,
            node,
            self.timings,
            on_message=handler.on_link_message,
            on_confirmed=self._confirmed,
            on_health=self._shard_health,
            on_lost=self.topology_changed,
            retire=self._retire,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._subscribed = Pulse()
        self._closed = False
        self._refreshed_at = -1e9
        self._owners: list[Address | None] = [None] * SLOTS

    def __repr__(self) -> str:
        return f"<ClusterLink {self.node}>"

    # -- state -------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        return self.health.latency

    @property
    def publisher_healthy(self) -> bool:
        return self.health.publisher and not self._closed

    @property
    def keys_reachable(self) -> bool:
        """The slot map is known and some master answers (pinned commands go to their slot's
        master; one whose master is down fails or waits)."""
        return (
            not self._closed
            and bool(self._rc.nodes_manager.slots_cache)
            and self._publishers.any_sendable
        )

    @property
    def subscriber_healthy(self) -> bool:
        return self.health.subscriber and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._publishers.inflight) + self._order.held_count

    @property
    def held(self) -> int:
        """Commands held for their slot's order (see the module docstring)."""
        return self._order.held_count

    @property
    def admitted(self) -> bool:
        return self._admitted

    @admitted.setter
    def admitted(self, value: bool) -> None:
        """Set by the bus: held commands go out again once it admits the link."""
        self._admitted = value
        self._order.set_open(value and not self._closed)

    def shards(self) -> dict[str, list[str]]:
        """The shards this node subscribes on and the channels on each (for tests and metrics)."""
        return self._subs.by_shard()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        self._tasks = [
            asyncio.create_task(self._topology_loop(), name=f"wsfleet-cluster-topology-{self.key}"),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-cluster-ping-{self.key}"),
        ]

    async def aclose(self) -> None:
        """Disconnect. Every wait is bounded (twice ``connect_timeout``): a task or a connection
        that does not end in time is logged and the close goes on."""
        if self._closed:
            return
        self._closed = True
        error = LinkError(f"{self.node} was removed")
        self._order.set_open(False)
        # Subscribers closed before their tasks are cancelled: their loops end even if a
        # library swallows the cancel.
        self._closing.update(self._subs.close(error))
        await self._stop_tasks()
        publishers = self._publishers.set_masters(set())
        entries = [*self._publishers.take_all(), *self._order.take_held()]
        entries.sort(key=lambda e: e.seq)
        leftover = [*(e.command for e in entries), *self._queue]
        self._queue = deque()
        closing = asyncio.gather(*(p.aclose() for p in publishers), return_exceptions=True)
        await self._bounded("the shard publishers", closing)
        self._set_health(PUBLISHER, False, "close", None)
        self._set_health(SUBSCRIBER, False, "close", None)
        if leftover:
            self._handler.on_link_failed(self, leftover, error)
        self._subscribed.fire()
        await self._bounded("redis-py's cluster client", self._rc.aclose())

    async def _stop_tasks(self) -> None:
        """Cancel and await every task this link owns, including any started meanwhile."""
        while tasks := [*self._tasks, *self._closing]:
            self._tasks.clear()
            self._closing.clear()
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=self.timings.connect_timeout * 2)
            if pending:
                log.warning(
                    "%s: %d tasks did not stop when cancelled: %s",
                    self.node,
                    len(pending),
                    ", ".join(sorted(t.get_name() for t in pending)),
                )
                return

    async def _bounded(self, what: str, work: Awaitable[object]) -> None:
        limit = self.timings.connect_timeout * 2
        try:
            async with asyncio.timeout(limit):
                await work
        except TimeoutError:
            log.warning("Redis %s: %s did not close in %.1f s", self.node, what, limit)

    # -- topology ----------------------------------------------------------------------------

    def topology_changed(self) -> None:
        """A shard failed or dropped a subscription: refresh the slot map."""
        self._refresh.set()

    async def _topology_loop(self) -> None:
        backoff = self.timings.backoff_initial
        first = True
        while not self._closed:
            self._refresh.clear()
            wait = self._refreshed_at + self.timings.backoff_initial - self._clock.now()
            if wait > 0:  # redirects in a burst ask for one refresh, not one each
                await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(self.timings.connect_timeout * 2):
                    if first:
                        await self._rc.initialize()
                    else:
                        await self._rc.nodes_manager.initialize()
                    await self._rc.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
            except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
                self._publisher_down(exc, [])
                self._expire_held()
                await self._sleep_or_refresh(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            if self.closed:  # a library swallowed the cancel of aclose
                return
            first = False
            self._refreshed_at = self._clock.now()
            self.refreshes += 1
            self._owners = slot_owners(self._rc.nodes_manager.slots_cache)
            self._apply_topology()
            masters = {(n.host, int(n.port)) for n in self._rc.get_primaries()}
            for gone in self._publishers.set_masters(masters):
                self._retire(asyncio.create_task(gone.aclose()))
            self._publishers_health()
            self._expire_held()
            if self._settled():
                backoff = self.timings.backoff_initial
                await self._refresh.wait()
            else:  # a shard is down, a channel unconfirmed or commands held: ask again
                await self._sleep_or_refresh(backoff)
                backoff = min(backoff * 2, self.timings.backoff_max)

    def _settled(self) -> bool:
        subs = self._subs
        return (
            subs.all_up
            and subs.all_confirmed
            and self._publishers.healthy
            and not self._order.held_count
        )

    async def _sleep_or_refresh(self, delay: float) -> None:
        try:
            async with asyncio.timeout(delay):
                await self._refresh.wait()
        except TimeoutError:
            pass

    def _apply_topology(self) -> None:
        if self._closed:  # no subscriber may start after the close
            return
        self._subs.apply(self._rc.nodes_manager.slots_cache)
        self._update_subscriber_health()
        self._subscribed.fire()

    def _retire(self, task: asyncio.Task[None]) -> None:
        """Keep a finishing task owned (awaited by aclose) until it is done."""
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _shard_health(self, healthy: bool, error: str | None) -> None:
        if not healthy:
            self.health.reconnects += 1
            self.topology_changed()
        self._update_subscriber_health(error)

    def _update_subscriber_health(self, error: str | None = None) -> None:
        up = bool(self._subs.subs) and self._subs.all_up
        if not self._subs.desired:
            up = self._ready
        self._set_health(SUBSCRIBER, up, "connect" if up else "error", None if up else error)

    def _confirmed(self, _link: object) -> None:
        self._subscribed.fire()
        self._handler.on_link_changed(self)

    # -- publisher (wsfleet.bus.cluster_publish, wsfleet.bus.cluster_order) ------------------

    def submit(self, command: Command) -> None:
        slot = command_slot(command.args)
        if command.pinned:
            self._send_pinned(command, slot)
        elif self._order.submit(command, slot, self._clock.now()) == REFUSED:
            error = LinkError(f"{self.node}: held commands over queue_max_bytes")
            self._handler.on_link_failed(self, [command], error)

    def _send_pinned(self, command: Command, slot: int) -> None:
        """Straight to the slot's master whenever its publisher is connected, healthy link or
        not: one shard failing over must not stop the lease refreshes and registry writes of
        the others (socket leases would expire fleet-wide during a long failover)."""
        owner = self._owners[slot]
        if owner is not None and self._publishers.sendable(owner):
            self._publishers.send(self._order.entry(command, slot, self._clock.now()), owner)
        elif not self._ready:
            self._queue.append(command)
        else:
            self._publisher_down(LinkError(f"{self.node}: no master for that slot now"), [command])

    def _slot_owner(self, slot: int) -> Address | None:
        return self._owners[slot]

    def _send(self, entry: Entry, address: Address) -> bool:
        if self._publishers.send(entry, address):
            return True
        if address not in self._publishers.shards:  # a master the slot map does not list yet
            self.topology_changed()
        return False

    def _replied(self, entry: Entry, future: asyncio.Future[Any]) -> None:
        command = entry.command
        error = future.exception()
        if error is not None and str(error).startswith(REDIRECTS):
            self._redirected(entry, error)
            return
        if not command.pinned:
            self._order.answered(entry)
        original = command.future
        if original is None or original.done():
            if error is not None:
                log.warning("Redis Cluster: %s failed: %s", command.args[0], error)
        elif error is not None:
            original.set_exception(error)
        else:
            original.set_result(future.result())

    def _redirected(self, entry: Entry, error: BaseException) -> None:
        pinned = entry.command.pinned
        ask = ask_address(error)
        if ask is not None:  # a slot being migrated: that command alone, to the importing node
            self.asks += 1
            if not pinned:
                self._order.back(entry, ask)
                return
            entry.ask = ask
            if self._publishers.send(entry, ask):
                return
        self.redirects += 1
        self._publisher_down(error, [entry.command] if pinned else [])
        if not pinned:
            self._order.back(entry)

    def _lost(self, entries: list[Entry], error: BaseException) -> None:
        """A shard's connection failed: hold what it had not answered, in its place."""
        if self._closed:
            self._handler.on_link_failed(self, [e.command for e in entries], error)
            return
        self.redirects += len(entries)
        self._publisher_down(error, [e.command for e in entries if e.command.pinned])
        for entry in entries:
            if not entry.command.pinned:
                self._order.back(entry)

    def take_queued(self) -> list[Command]:
        return [entry.command for entry in self._order.take_held()]

    def _publishers_health(self) -> None:
        """Healthy once the slot map is known and every master's publisher is connected."""
        if self._closed:
            return
        healthy = self._publishers.healthy and bool(self._rc.nodes_manager.slots_cache)
        if healthy and not self.health.publisher:
            self.publisher_connects += 1
            self._ready = True
            self._set_health(PUBLISHER, True, "connect", None)
            queued, self._queue = list(self._queue), deque()
            for command in queued:
                self.submit(command)
        elif not healthy and self.health.publisher:
            self._publisher_down(LinkError(f"{self.node}: a shard master is not reachable"), [])
        if healthy:
            self._order.release_all()

    def _drained(self) -> None:
        self.batches = self._publishers.batches
        if not self._queue and not self._order.held_count:
            self._handler.on_link_changed(self)

    def _publisher_down(self, error: BaseException, commands: list[Command]) -> None:
        """A shard did not answer or redirected: hand pinned ``commands`` and the queue back
        (they fail), hold the rest until the bus admits the link again, refresh."""
        self._ready = False
        self.admitted = False
        self._set_health(PUBLISHER, False, "error", f"{self.node}: {error}")
        leftover = [*commands, *self._queue]
        self._queue.clear()
        if leftover:
            self._handler.on_link_failed(self, leftover, error)
        self.topology_changed()

    def _expire_held(self) -> None:
        expired = self._order.expire(self._clock.now(), self.timings.held_max_age)
        for entry in expired:
            future = entry.command.future
            error = LinkError(f"{self.node}: no master took it in {self.timings.held_max_age} s")
            if future is not None and not future.done():
                future.set_exception(error)
            else:
                log.warning("Redis Cluster: dropped %s: %s", entry.command.args[0], error)
        if expired:
            self._drained()

    async def call(self, *args: Any, timeout: float | None = None) -> Any:
        limit = timeout or self.timings.command_timeout * 2
        if args[:2] == ("PUBSUB", "NUMSUB"):
            async with asyncio.timeout(limit):
                return await self._numsub(args[2:])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(Command(args, future, pinned=True, retry=False))
        async with asyncio.timeout(limit):
            return await future

    async def _numsub(self, channels: Iterable[Any]) -> list[Any]:
        """``PUBSUB NUMSUB`` of the bus, answered by ``PUBSUB SHARDNUMSUB`` on each owner."""
        flat: list[Any] = []
        for channel in channels:
            raw = channel.encode() if isinstance(channel, str) else bytes(channel)
            try:
                node = self._rc.get_node_from_key(raw.decode(errors="replace"))
                reply = await self._rc.execute_command("PUBSUB SHARDNUMSUB", raw, target_nodes=node)
            except (RedisError, RedisClusterException, OSError) as exc:
                raise LinkError(f"{self.node}: {exc}") from exc
            flat.extend([raw, shardnumsub_count(reply, raw)])
        return flat

    # -- subscriber --------------------------------------------------------------------------

    def set_channels(self, desired: set[bytes]) -> None:
        self._subs.desired = set(desired)
        if self._rc.nodes_manager.slots_cache:
            self._apply_topology()

    def update_channels(self, added: set[bytes], removed: set[bytes]) -> None:
        slots = self._rc.nodes_manager.slots_cache
        if not slots:  # no slot map yet: the first one places every wanted channel
            self._subs.desired |= added
            self._subs.desired -= removed
            return
        if self._closed:
            return
        self._subs.update(added, removed, slots)
        self._update_subscriber_health()

    def is_subscribed(self, channels: Iterable[bytes]) -> bool:
        return self._subs.is_subscribed(channels)

    async def wait_subscribed(self, channels: Iterable[bytes]) -> None:
        wanted = list(channels)
        while not self.is_subscribed(wanted):
            if self._closed:
                raise LinkError(f"{self.node} was removed")
            await self._subscribed.wait(self._clock, 60.0)

    def force_resubscribe(self) -> None:
        self._subs.force_resubscribe()
        self.topology_changed()

    # -- health ------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(self.timings.ping_interval)
            self._subs.ping(loop.time())

    def _set_health(self, role: str, healthy: bool, event: str, error: str | None) -> None:
        if self.health.update(role, healthy, error):
            self._handler.on_link_health(self, role, healthy, event, error)
