"""The cross-server bus: every broker node of the fleet, seen as one ordered, failure-tolerant pipe.

- **Subscribe on all, publish through one.** Each broker node has a link
  (:class:`~wsfleet.bus.broker.BrokerLink`: a Redis node, or a ``memory://`` broker); every link
  subscribes to every channel the node needs (reference-counted), and each publish goes through
  the link the :class:`Router` picks for its routing key. Links report back only through the
  :class:`~wsfleet.bus.broker.BrokerEventHandler` methods of the bus; the bus reports to its
  consumer (the fleet) only through :class:`BusEventHandler`.
- **No silent loss.** A publish that fails on one link is re-routed to another healthy link (up to
  ``max_publish_attempts``); with no usable link it waits in the bounded :class:`OutageBuffer`
  (expired by a timer at the oldest entry's deadline) and is flushed in order when a link comes
  back. Callers that ask for a future get the outcome. Receivers drop the duplicates a retry can
  create (sender boot id + sequence number).
- **A link publishes only once the fleet listens on it**, and **no reordering when keys move**:
  :mod:`wsfleet.bus.switching` (admission and reorder-free switching, as explicit states).
- **The limit of pub/sub.** A PUBLISH that a Redis node acknowledged is not retried: if that node
  dies before its subscribers read the message, the message is lost; only a durable transport
  (streams) could close it.
- **End-to-end probe**: :mod:`wsfleet.bus.probing`.
- **Hot-plug.** Links can be added (subscribe first, publish only once the fleet listens) and
  removed (stop publishing, keep listening for ``drain_grace``, then disconnect) at run time.

Every wait is on an event or a timer of the injected :class:`~wsfleet.clock.Clock`; every task
is owned (:class:`~wsfleet.tasks.TaskOwner`) and nothing starts once :meth:`Bus.aclose` began.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wsfleet.bus.auth import MAYBE_ORIGINAL, AuthMode, BusAuth
from wsfleet.bus.broker import BrokerLink, Command, LinkTimings, command_size
from wsfleet.bus.channels import ChannelSet
from wsfleet.bus.codec import BusCodec, BusDecodeError
from wsfleet.bus.dedup import DuplicateFilter, Verdict
from wsfleet.bus.envelopes import meta_of, sender_of
from wsfleet.bus.events import BusEventHandler, HealthListener, MessageHandler, as_handler
from wsfleet.bus.failover import Failover
from wsfleet.bus.hotplug import hot_add, hot_remove
from wsfleet.bus.lease_budget import check_lease_budget
from wsfleet.bus.memory_link import MemoryLink
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.outage import OutageBuffer
from wsfleet.bus.probing import Prober
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.routing import Router
from wsfleet.bus.settings import FleetSettings
from wsfleet.bus.signals import ClosingError, Pulse
from wsfleet.bus.stats import BusStats, BusUnavailableError, health_info
from wsfleet.bus.switching import REORDER_GUARD, Admissions, Switcher
from wsfleet.bus.tls import client_context
from wsfleet.bus.topology_links import topology_link
from wsfleet.clock import Clock, LoopClock
from wsfleet.sealing import FIELD
from wsfleet.tasks import TaskOwner

if TYPE_CHECKING:
    from wsfleet.tracing import Tracing

__all__ = [
    "REORDER_GUARD",
    "Bus",
    "BusEventHandler",
    "BusStats",
    "BusUnavailableError",
    "HealthListener",
    "MessageHandler",
]

log = logging.getLogger("wsfleet.bus")

CHANNEL_CACHE_SIZE = 4096
"""Channel names whose decoded text and metric kind a bus remembers (cleared when full)."""


class Bus:
    def __init__(
        self,
        settings: FleetSettings,
        handler: BusEventHandler | MessageHandler,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.server_name
        self.boot = secrets.token_hex(6)
        self.clock: Clock = clock or LoopClock()
        self.codec = BusCodec(settings.serialization)
        self.router = Router(settings.strategy)
        self.key_router = Router()  # keyed commands always hash: a key lives on one Redis node
        self.dedup = DuplicateFilter()
        self.auth = BusAuth.from_settings(settings)
        self._signed = self.auth.mode is not AuthMode.OFF
        self.outage: OutageBuffer[Command] = OutageBuffer(
            settings.outage_buffer_size,
            settings.outage_buffer_max_age,
            settings.outage_buffer_max_bytes,
            command_size,
        )
        self.stats = BusStats()
        self.tracing: Tracing | None = None
        self.links: dict[str, BrokerLink] = {}
        self.draining: dict[str, BrokerLink] = {}
        """Links being removed (still listened to for ``drain_grace``)."""
        self.configured: list[RedisNode] = list(settings.redis)
        self.health_listeners: list[HealthListener] = []
        self.handler: BusEventHandler = as_handler(handler)
        self._on_message = self.handler.on_bus_message
        self.link_events = Pulse()
        self.on_link_changed: Callable[[BrokerLink], None] = self._link_changed
        """(BrokerEventHandler) a link's subscriptions or in-flight count changed."""
        self.peer_events = Pulse()
        self.switcher = Switcher(self)
        self.failover = Failover(self, self.stats, self._dispatch)
        self.prober = Prober(self, self.stats)
        self.tasks = TaskOwner("the bus")
        self.admissions = Admissions(self, self.switcher, self.tasks)
        self._seq = itertools.count(1)
        self.channels = ChannelSet(self._channels_changed)
        self._started = False
        self.peers: Callable[[], Iterable[str]] = lambda: ()
        """Names of the live wsfleet nodes (the fleet's registry); a (re)connected link waits
        until each of them listens on it."""
        self._timings = LinkTimings(
            connect_timeout=settings.command_timeout,
            command_timeout=settings.command_timeout,
            ping_interval=settings.redis_ping_interval,
            ping_timeout=settings.redis_ping_timeout,
            queue_max_bytes=settings.publish_queue_max_bytes,
            held_max_age=settings.outage_buffer_max_age,
            tls=client_context(
                settings.redis_tls_ca_file,
                settings.redis_tls_cert_file,
                settings.redis_tls_key_file,
                verify=settings.redis_tls_verify,
            ),
        )
        self.inbox = settings.inbox_channel(self.name)
        self._sharded: tuple[int, bool] | None = None
        self._kinds: dict[str, str] = {}
        self._channel_names: dict[bytes, tuple[str, str]] = {}
        """Received channel names: bytes -> (text, metric kind), for the channels subscribed."""
        self._echo_marker = self.codec.key_marker("b", self.boot)
        """``"b": <our boot id>`` as encoded in the ``wsf`` field of everything we publish."""
        self.keep_subscribed(self.inbox, settings.control_channel)

    @property
    def closing(self) -> bool:
        return self.tasks.closing

    def _link_changed(self, link: BrokerLink) -> None:
        self.link_events.fire()
        if len(self.outage):  # a paced flush goes on once the links answered its last step
            self.failover.flush()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.tasks.reopen()
        for node in self.configured:
            self._add_link(node, publishable=True)
        self.tasks.start(self.prober.run(), "wsfleet-bus-probe")
        self.auth.announce(self.name)
        if self.settings.bus_key_file is not None and self._signed:
            self.tasks.start(
                self.auth.watch(self.clock, self.settings.config_poll_interval), "wsfleet-bus-keys"
            )

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until at least one link publishes and every link listens to every channel."""
        deadline = self.clock.now() + timeout
        while True:
            if not self.links:
                raise BusUnavailableError("no Redis node is configured")
            if self.usable_links() and all(
                link.is_subscribed(self.channels.wanted) for link in self.links.values()
            ):
                return
            if self.clock.now() >= deadline:
                raise TimeoutError(f"the bus was not ready within {timeout} s")
            await self.link_events.wait(self.clock, deadline - self.clock.now())

    async def aclose(self) -> None:
        """Stop every task, then disconnect every link; what is still buffered fails."""
        await self.tasks.aclose()
        self.link_events.fire()  # hot-plug calls waiting in their callers' tasks end now
        self.peer_events.fire()
        links = list(self.links.values())
        self.links.clear()
        await asyncio.gather(*(link.aclose() for link in links), return_exceptions=True)
        self.failover.close(BusUnavailableError("the bus was closed"))
        self._started = False

    # -- links and hot-plug ------------------------------------------------------------------

    def _add_link(self, node: RedisNode, *, publishable: bool) -> BrokerLink:
        if self.closing:
            raise ClosingError("the bus is closing")
        link: BrokerLink
        if node.memory:
            link = MemoryLink(node, self, timings=self._timings, clock=self.clock)
        elif node.mode != "node":  # Redis Cluster or Sentinel (wsfleet.bus.topology_links)
            link = topology_link(node, self, self._timings)
        else:
            link = RedisLink(node, self, timings=self._timings)
        link.publishable = publishable
        link.marker = self.inbox.encode()
        link.set_channels(self.channels.wanted)
        self.links[link.key] = link
        self._sharded = None
        link.start()
        return link

    @property
    def sharded(self) -> bool:
        """True on a Redis Cluster: sharded pub/sub, and keys that must share a slot."""
        # Read for every direct message: recomputed only when the links or configured nodes
        # changed (every link is added by _add_link, and a removal changes their number).
        size = len(self.links) + (len(self.configured) << 16)
        known = self._sharded
        if known is None or known[0] != size:
            known = self._sharded = (size, self._compute_sharded())
        return known[1]

    def _compute_sharded(self) -> bool:
        return any(link.node.mode == "cluster" for link in self.links.values()) or any(
            node.mode == "cluster" for node in self.configured
        )

    def usable_links(self) -> list[BrokerLink]:
        return [
            link
            for link in self.links.values()
            if link.publishable and link.admitted and link.publisher_healthy
        ]

    def wanted_channels(self) -> set[bytes]:
        return self.channels.wanted

    def peer_names(self) -> list[str]:
        return sorted(set(self.peers()) - {self.name})

    def peers_changed(self) -> None:
        """The registry refreshed its view of the live nodes."""
        self.peer_events.fire()

    async def add_redis_node(
        self, node: RedisNode, *, ready: Callable[[str], bool] | None = None
    ) -> bool:
        """Hot-add a Redis node: subscribe on it, then publish through it once ``ready(key)``
        says the whole fleet listens on it (or after ``hot_add_grace``). False if known already
        or if the bus is closing (no link is created then)."""
        if node.key in self.links or self.closing:
            return False
        return await hot_add(self, self._add_link(node, publishable=False), ready)

    async def remove_redis_node(self, key: str) -> bool:
        """Hot-remove: stop publishing through it, keep listening for ``drain_grace``, then
        disconnect. Messages queued on it are re-routed. False if unknown, already draining, or
        when :meth:`cancel_removal` kept it."""
        link = self.links.get(key)
        if link is None or key in self.draining:
            return False
        if not await hot_remove(self, link):
            return False
        self.prober.forget(key)
        return True

    def cancel_removal(self, key: str) -> bool:
        """Keep a link that is draining (its node is listed again); False if none drains."""
        if self.draining.pop(key, None) is None:
            return False
        self.link_events.fire()
        return True

    def current_keys(self) -> list[str]:
        """Keys of the links that are not being removed."""
        return [key for key in self.links if key not in self.draining]

    def subscribed_on(self) -> list[str]:
        """Keys of the links that listen to every channel of this node (for the registry)."""
        return [k for k, link in self.links.items() if link.is_subscribed(self.channels.wanted)]

    # -- subscriptions -----------------------------------------------------------------------

    def keep_subscribed(self, *channels: str) -> None:
        """Channels subscribed for the whole life of the bus (inbox, bridge, presets)."""
        self.channels.keep(channels)

    def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def wait_subscribed(self, *channels: str) -> None:
        raw = [c.encode() for c in channels]
        await asyncio.gather(*(link.wait_subscribed(raw) for link in self.links.values()))

    def _channels_changed(self, added: set[bytes], removed: set[bytes]) -> None:
        for link in self.links.values():
            link.update_channels(added, removed)

    # -- publishing --------------------------------------------------------------------------

    def meta(self, channel: str | None = None, **extra: Any) -> dict[str, Any]:
        """The ``wsf`` field of an envelope; with tracing on and ``channel`` given (for envelopes
        encoded before :meth:`publish_raw`), a producer span's context goes into it."""
        meta = {"b": self.boot, "s": next(self._seq)}
        if extra:
            meta.update(extra)
        if channel is not None and self.tracing is not None:
            self.tracing.publish(channel, self.channel_kind(channel), meta)
        return meta

    def publish(
        self,
        channel: str,
        message: dict[str, Any],
        routing_key: str,
        *,
        want_result: bool = False,
    ) -> asyncio.Future[Any] | None:
        """Publish ``message`` (already holding its ``wsf`` meta) through one Redis node.

        Returns a future of the receiver count when ``want_result``; otherwise failures are
        counted and logged, never silent. Raises :class:`BusDecodeError` for unencodable data.
        """
        if self.tracing is not None:
            wsf = message.get("wsf")
            if isinstance(wsf, dict) and "tp" not in wsf:
                self.tracing.publish(channel, self.channel_kind(channel), wsf)
        data = self.codec.dumps(message)
        if self._signed:
            data = self.auth.seal(data, channel)
        future = asyncio.get_running_loop().create_future() if want_result else None
        self.stats.published += 1
        self.stats.published_by_kind[self.channel_kind(channel)] += 1
        self._dispatch(Command(("PUBLISH", channel, data), future, routing_key))
        return future

    def publish_raw(self, channel: str, data: bytes, routing_key: str) -> None:
        if self._signed:
            data = self.auth.seal(data, channel)
        self.stats.published += 1
        self.stats.published_by_kind[self.channel_kind(channel)] += 1
        self._dispatch(Command(("PUBLISH", channel, data), None, routing_key))

    def execute(
        self, args: tuple[Any, ...], routing_key: str, *, want_result: bool = True
    ) -> asyncio.Future[Any] | None:
        """Run a command on the Redis node that holds ``routing_key`` (rendezvous hash over the
        usable nodes, whatever the publish strategy)."""
        future = asyncio.get_running_loop().create_future() if want_result else None
        self._dispatch(Command(args, future, routing_key, retry=True, keyed=True))
        return future

    def link_for_key(self, routing_key: str) -> BrokerLink | None:
        return self.key_router.pick(self.usable_links(), routing_key)

    def lease_link(self, routing_key: str) -> BrokerLink | None:
        """Where the lease of ``routing_key`` is refreshed: :meth:`link_for_key`, except on a
        Redis Cluster, where the cluster link takes it while a shard fails over (the lease's own
        master answers; the whole link is unusable for publishes until every shard is back)."""
        if self.sharded:
            for link in self.links.values():
                if link.publishable and link.keys_reachable:
                    return link
        return self.link_for_key(routing_key)

    def _pick(self, command: Command, exclude: BrokerLink | None = None) -> BrokerLink | None:
        candidates = self.usable_links()
        if exclude is not None and len(candidates) > 1:
            candidates = [c for c in candidates if c is not exclude]
        router = self.key_router if command.keyed else self.router
        return router.pick(candidates, command.routing_key)

    def pick_link(self, command: Command) -> BrokerLink | None:
        return self._pick(command)

    def _dispatch(self, command: Command, exclude: BrokerLink | None = None) -> None:
        # Behind what is buffered or held, never past it: that keeps every target's order.
        if not self.switcher.holds and not len(self.outage):
            link = self._pick(command, exclude)
            if link is not None:
                link.submit(command)
                return
        self.failover.keep(command)

    def flush_outage(self) -> None:
        self.failover.flush()

    async def flush(self, timeout: float) -> bool:
        """Wait until the outage buffer and every link's queue are empty (used by the drain
        before disconnecting); False when ``timeout`` passed first."""
        deadline = self.clock.now() + timeout
        while True:
            self.flush_outage()
            if not len(self.outage) and not any(link.in_flight for link in self.links.values()):
                return True
            if self.clock.now() >= deadline:
                return False
            await self.link_events.wait(self.clock, deadline - self.clock.now())

    # -- what the links report (BrokerEventHandler) ------------------------------------------

    def on_link_failed(
        self, link: BrokerLink, commands: list[Command], error: BaseException
    ) -> None:
        self.failover.link_failed(link, commands, error)

    def on_link_health(
        self, link: BrokerLink, role: str, healthy: bool, event: str, error: str | None
    ) -> None:
        if role == "publisher":
            if healthy:
                if not link.closed and not self.closing:
                    self.admissions.start(link)
                    if link.node.mode == "cluster" and link.publisher_connects == 1:
                        self.tasks.start(self._check_lease_budget(link), "wsfleet-lease-budget")
            else:
                link.admitted = False
                self.admissions.stop(link)
        self.link_events.fire()
        info = health_info(self.name, link, role, healthy, event, error, self.links.values())
        log.log(
            logging.INFO if healthy or event == "close" else logging.WARNING,
            "Redis %s %s %s",
            link.node,
            role,
            "healthy" if healthy else f"unhealthy ({error})",
        )
        for listener in [self.handler.on_bus_health, *self.health_listeners]:
            try:
                listener(healthy, info)
            except Exception:
                log.exception("Redis health listener failed")

    async def _check_lease_budget(self, link: BrokerLink) -> None:
        settings = self.settings
        warning = await check_lease_budget(link, settings.lease_ttl, settings.command_timeout)
        if warning is not None:
            log.warning("node %s: %s", self.name, warning)

    def _receive(self, link: BrokerLink, channel_raw: bytes, data: bytes) -> None:
        # The hot path of every message from Redis: plain attribute reads, one decode.
        stats = self.stats
        stats.received += 1
        names = self._channel_names.get(channel_raw)
        if names is None:
            names = self._name_channel(channel_raw)
        channel, kind = names
        stats.received_by_kind[kind] += 1
        inbox = channel == self.inbox
        # Our own boot id: we published it, no need to decode. (Not looked for on our inbox, where
        # only our probes come back from us; anything else of ours is dropped below by sender.)
        if not inbox and self._echo_marker in data:
            stats.self_echo_dropped += 1
            return
        signed = self._signed
        refused = self.auth.check(channel_raw, data) if signed else None
        if refused is not None and refused != MAYBE_ORIGINAL:
            self._reject(refused, channel_raw)
            return
        try:
            message = self.codec.loads(data)
        except BusDecodeError as exc:
            stats.decode_errors += 1
            log.debug("undecodable message on %r: %s", channel_raw, exc)
            return
        if refused is not None and not self.auth.original_shaped(self.settings, channel, message):
            self._reject("unsigned", channel_raw)
            return
        if signed:
            message.pop(FIELD, None)
        if inbox and message.get("action") == "probe":
            self.prober.returned(link, message)
            return
        sender = message.get("senderServer")
        if type(sender) is not str:
            sender = sender_of(message)
        if sender == self.name:
            stats.self_echo_dropped += 1
            return
        wsf = message.get("wsf")
        if wsf is not None:
            verdict = self.dedup.admit(wsf, data, verified=signed)
            if verdict is not Verdict.NEW:
                if verdict is Verdict.DUPLICATE:
                    stats.duplicates_dropped += 1
                else:
                    self._reject("replay", channel_raw)
                return
        if self.tracing is None:
            self._on_message(channel, message)
            return
        traceparent = meta_of(message).traceparent
        with self.tracing.receive(channel, kind, traceparent):
            self._on_message(channel, message)

    def _name_channel(self, channel_raw: bytes) -> tuple[str, str]:
        channel = channel_raw.decode("utf-8", "replace")
        names = (channel, self.channel_kind(channel))
        cache = self._channel_names
        if len(cache) >= CHANNEL_CACHE_SIZE:  # the subscribed channels; a bound all the same
            cache.clear()
        cache[channel_raw] = names
        return names

    def channel_kind(self, channel: str) -> str:
        """``FleetSettings.channel_kind``, remembered for the channels in use (every publish and
        every message received counts by kind)."""
        kind = self._kinds.get(channel)
        if kind is None:
            kind = self.settings.channel_kind(channel)
            if len(self._kinds) >= CHANNEL_CACHE_SIZE:
                self._kinds.clear()
            self._kinds[channel] = kind
        return kind

    on_link_message = _receive

    def _reject(self, reason: str, channel_raw: bytes) -> None:
        self.stats.rejected[reason] += 1
        log.debug("refused a bus message on %r: %s", channel_raw, reason)

    # -- end-to-end probe (wsfleet.bus.probing) ----------------------------------------------

    async def probe(self, link: BrokerLink) -> float:
        return await self.prober.probe(link)

    async def probe_all(self) -> dict[str, float | None]:
        return await self.prober.probe_all()

    def working_paths(self) -> list[str]:
        """Keys of the Redis nodes through which our own probe made the round trip recently and
        whose connections are healthy now: readiness of a fleet node means this is not empty."""
        return self.prober.working_paths()
