"""A whole Redis Cluster (7.0+) as one :class:`~wsfleet.bus.broker.BrokerLink`, on sharded pub/sub.

- **Topology** is redis-py's (``redis.asyncio.cluster.RedisCluster``): the slot map, ``MOVED`` /
  ``ASK`` and refreshes. The link refreshes it whenever a shard's connection fails or a shard
  drops a subscription (a slot moved), and again on a timer while a shard it needs is down.
- **Publishing.** Every command of one loop turn goes out in one redis-py cluster pipeline, one
  pipeline at a time, so the commands for one shard keep their submission order. ``PUBLISH``
  becomes ``SPUBLISH`` (the shard owning the channel's slot); keyed commands (``EVAL``, ``GET``,
  ``SET``) go to the shard owning their keys. Commands whose shard failed are handed back to the
  bus (:meth:`BrokerEventHandler.on_link_failed`): the bus keeps them, in order, in its outage
  buffer until the link is healthy again and every node listens on it.
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
from collections.abc import Iterable
from typing import Any

from wsfleet.bus.broker import (
    PUBLISHER,
    SUBSCRIBER,
    BrokerEventHandler,
    Command,
    LinkError,
    LinkHealth,
    LinkTimings,
    take_unpinned,
)
from wsfleet.bus.cluster_publish import ShardPublishers, command_slot
from wsfleet.bus.cluster_shards import ShardSubscriber, shardnumsub_count
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_py import (
    ClusterDownError,
    ClusterNode,
    ConnectionError,
    NoBackoff,
    RedisCluster,
    RedisClusterException,
    RedisError,
    Retry,
    TryAgainError,
)
from wsfleet.bus.signals import Pulse
from wsfleet.bus.slots import key_slot
from wsfleet.bus.topology_nodes import addresses
from wsfleet.clock import LoopClock

log = logging.getLogger("wsfleet.bus")

Address = tuple[str, int]

#: Errors that mean "this shard cannot answer now" (retry after a refresh), not "bad command".
_SHARD_DOWN = (ConnectionError, TimeoutError, OSError, ClusterDownError, TryAgainError)


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
        self.admitted = False
        self.marker: bytes | None = None
        self.publisher_connects = 0
        self.batches = 0
        self.refreshes = 0
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
        self._publishers = ShardPublishers(
            node, self, self._handed_back, self._publishers_health, self._drained
        )
        self._refresh = asyncio.Event()
        self._ready = False
        self._desired: set[bytes] = set()
        self._owner: dict[bytes, Address] = {}
        self._shards: dict[Address, ShardSubscriber] = {}
        self._shard_up: dict[Address, bool] = {}
        self._shard_tasks: dict[Address, list[asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._subscribed = Pulse()
        self._clock = LoopClock()
        self._closed = False

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
    def subscriber_healthy(self) -> bool:
        return self.health.subscriber and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._publishers.inflight)

    def shards(self) -> dict[str, list[str]]:
        """The shards this node subscribes on and the channels on each (for tests and metrics)."""
        out: dict[str, list[str]] = {}
        for channel, (host, port) in self._owner.items():
            out.setdefault(f"{host}:{port}", []).append(channel.decode())
        return {k: sorted(v) for k, v in out.items()}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        self._tasks = [
            asyncio.create_task(self._topology_loop(), name=f"wsfleet-cluster-topology-{self.key}"),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-cluster-ping-{self.key}"),
        ]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        error = LinkError(f"{self.node} was removed")
        for sub in self._shards.values():
            sub.close(error)  # their loops end even if a cancel is swallowed
        self._shards.clear()
        await self._stop_tasks()
        publishers = self._publishers.set_masters(set())
        leftover = [*self._publishers.take_all(), *self._queue]
        self._queue = deque()
        await asyncio.gather(*(p.aclose() for p in publishers), return_exceptions=True)
        self._set_health(PUBLISHER, False, "close", None)
        self._set_health(SUBSCRIBER, False, "close", None)
        if leftover:
            self._handler.on_link_failed(self, leftover, error)
        self._subscribed.fire()
        await self._rc.aclose()

    async def _stop_tasks(self) -> None:
        """Cancel and await every task this link owns, including any started meanwhile."""
        while tasks := [
            *self._tasks,
            *self._closing,
            *(t for ts in self._shard_tasks.values() for t in ts),
        ]:
            self._tasks.clear()
            self._closing.clear()
            self._shard_tasks.clear()
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

    # -- topology ----------------------------------------------------------------------------

    def topology_changed(self) -> None:
        """A shard failed or dropped a subscription: refresh the slot map."""
        self._refresh.set()

    async def _topology_loop(self) -> None:
        backoff = self.timings.backoff_initial
        first = True
        while not self._closed:
            self._refresh.clear()
            try:
                async with asyncio.timeout(self.timings.connect_timeout * 2):
                    if first:
                        await self._rc.initialize()
                    else:
                        await self._rc.nodes_manager.initialize()
                    await self._rc.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
            except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
                self._publisher_down(exc, [])
                await self._sleep_or_refresh(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            if self.closed:  # a library swallowed the cancel of aclose
                return
            first = False
            self.refreshes += 1
            self._apply_topology()
            masters = {(n.host, int(n.port)) for n in self._rc.get_primaries()}
            for gone in self._publishers.set_masters(masters):
                self._retire(asyncio.create_task(gone.aclose()))
            self._publishers_health()
            if all(self._shard_up.get(a, False) for a in self._shards):
                backoff = self.timings.backoff_initial
                await self._refresh.wait()
            else:  # a shard it needs is down: ask again until a replica took over
                await self._sleep_or_refresh(backoff)
                backoff = min(backoff * 2, self.timings.backoff_max)

    async def _sleep_or_refresh(self, delay: float) -> None:
        try:
            async with asyncio.timeout(delay):
                await self._refresh.wait()
        except TimeoutError:
            pass

    def _apply_topology(self) -> None:
        """Put each wanted channel on the subscriber of the master owning its slot."""
        if self._closed:
            return
        slots = self._rc.nodes_manager.slots_cache
        owner: dict[bytes, Address] = {}
        for channel in self._desired:
            nodes = slots.get(key_slot(channel))
            if nodes:
                owner[channel] = (nodes[0].host, int(nodes[0].port))
        self._owner = owner
        wanted: dict[Address, set[bytes]] = {}
        for channel, address in owner.items():
            wanted.setdefault(address, set()).add(channel)
        for address in [a for a in self._shards if a not in wanted]:
            self._drop_shard(address)
        for address, channels in wanted.items():
            sub = self._shards.get(address) or self._add_shard(address)
            sub.set_channels(channels)
        self._update_subscriber_health()
        self._subscribed.fire()

    def _add_shard(self, address: Address) -> ShardSubscriber:
        host, port = address
        node = RedisNode(
            host=host,
            port=port,
            username=self.node.username,
            password=self.node.password,
            tls=self.node.tls,
        )
        sub = ShardSubscriber(
            self,
            node,
            self.timings,
            LinkHealth(),
            lambda role, healthy, event, error: self._shard_health(address, healthy, error),
        )
        sub.on_lost = self.topology_changed
        self._shards[address] = sub
        self._shard_up[address] = False
        self._shard_tasks[address] = [
            asyncio.create_task(
                sub.run(self._handler.on_link_message, self._confirmed),
                name=f"wsfleet-cluster-sub-{host}:{port}",
            ),
            asyncio.create_task(sub.reconcile_loop(), name=f"wsfleet-cluster-subs-{host}:{port}"),
        ]
        return sub

    def _drop_shard(self, address: Address) -> None:
        sub = self._shards.pop(address)
        self._shard_up.pop(address, None)
        sub.close(LinkError(f"{address[0]}:{address[1]} no longer owns a wanted channel"))
        for task in self._shard_tasks.pop(address, []):
            task.cancel()
            self._retire(task)

    def _retire(self, task: asyncio.Task[None]) -> None:
        """Keep a finishing task owned (awaited by aclose) until it is done."""
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _shard_health(self, address: Address, healthy: bool, error: str | None) -> None:
        if address not in self._shards:
            return
        self._shard_up[address] = healthy
        if not healthy:
            self.health.reconnects += 1
            self.topology_changed()
        self._update_subscriber_health(error)

    def _update_subscriber_health(self, error: str | None = None) -> None:
        up = bool(self._shards) and all(self._shard_up.get(a, False) for a in self._shards)
        if not self._desired:
            up = self._ready
        self._set_health(SUBSCRIBER, up, "connect" if up else "error", None if up else error)

    def _confirmed(self, _link: object) -> None:
        self._subscribed.fire()
        self._handler.on_link_changed(self)

    # -- publisher (wsfleet.bus.cluster_publish) ----------------------------------------------

    def submit(self, command: Command) -> None:
        if not self._ready:
            self._queue.append(command)
            return
        self._route(command)

    def _route(self, command: Command) -> None:
        nodes = self._rc.nodes_manager.slots_cache.get(command_slot(command.args))
        owner = (nodes[0].host, int(nodes[0].port)) if nodes else None
        if not self._publishers.send(command, owner):
            self._publisher_down(LinkError(f"{self.node}: no master for that slot now"), [command])

    def take_queued(self) -> list[Command]:
        return take_unpinned(self._queue)

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
                self._route(command)
        elif not healthy and self.health.publisher:
            self._publisher_down(LinkError(f"{self.node}: a shard master is not reachable"), [])

    def _handed_back(self, commands: list[Command], error: BaseException) -> None:
        self._publisher_down(error, commands)

    def _drained(self) -> None:
        self.batches = self._publishers.batches
        if not self._queue:
            self._handler.on_link_changed(self)

    def _publisher_down(self, error: BaseException, commands: list[Command]) -> None:
        """A shard did not answer or redirected: hand ``commands`` and the queue back, refresh."""
        self._ready = False
        self._set_health(PUBLISHER, False, "error", f"{self.node}: {error}")
        leftover = [*commands, *self._queue]
        self._queue.clear()
        if leftover:
            self._handler.on_link_failed(self, leftover, error)
        self.topology_changed()

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
        self._desired = set(desired)
        if self._rc.nodes_manager.slots_cache:
            self._apply_topology()

    def is_subscribed(self, channels: Iterable[bytes]) -> bool:
        for channel in channels:
            address = self._owner.get(channel)
            sub = self._shards.get(address) if address is not None else None
            if sub is None or not sub.confirmations.covers((channel,)):
                return False
        return True

    async def wait_subscribed(self, channels: Iterable[bytes]) -> None:
        wanted = list(channels)
        while not self.is_subscribed(wanted):
            if self._closed:
                raise LinkError(f"{self.node} was removed")
            await self._subscribed.wait(self._clock, 60.0)

    def force_resubscribe(self) -> None:
        for sub in self._shards.values():
            sub.force_resubscribe()
        self.topology_changed()

    # -- health ------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(self.timings.ping_interval)
            for sub in list(self._shards.values()):
                sub.ping(loop.time())

    def _set_health(self, role: str, healthy: bool, event: str, error: str | None) -> None:
        if self.health.update(role, healthy, error):
            self._handler.on_link_health(self, role, healthy, event, error)
