"""The cross-server bus: every Redis node of the fleet, seen as one ordered, failure-tolerant pipe.

- **Subscribe on all, publish through one.** Each Redis node has a :class:`RedisLink`; every link
  subscribes to every channel the node needs (reference-counted), and each publish goes through the
  link the :class:`Router` picks for its routing key.
- **No silent loss.** A publish that fails on one link is re-routed to another healthy link (up to
  ``max_publish_attempts``); with no usable link it waits in the bounded :class:`OutageBuffer` and
  is flushed in order when a link comes back. Callers that ask for a future get the outcome.
  Receivers drop the duplicates a retry can create (sender boot id + sequence number).
- **A link publishes only once the fleet listens on it.** When a link's publisher (re)connects it
  is *admitted* only after its own subscriber has confirmed every channel and every other live
  node (from the registry) has a subscriber on its inbox on that Redis node (``PUBSUB NUMSUB``;
  the inbox is subscribed last, so the rest of that node's channels are in place too), bounded
  by ``hot_add_grace``. Until then its routing keys stay on the other links, or in the outage
  buffer when it is the only one.
- **No reordering when keys move.** Whenever routing keys change hands (a link is admitted, a
  hot-added link starts publishing, a removed one stops) new publishes are *held* in the outage
  buffer until every link has flushed what it was sending, plus ``REORDER_GUARD``; then the buffer
  is flushed, oldest first. Publishes that failed on a link go back *before* anything held or
  buffered, since they are older.
- **The limit of pub/sub.** A PUBLISH that a Redis node acknowledged is not retried: if that node
  dies before its subscribers read the message (it was in its output buffers or in flight when
  the process was killed), the message is lost. No client can see this; only a durable transport
  (streams) could close it.
- **End-to-end probe.** Each link is probed by publishing to this node's inbox through that link
  and receiving it on that link's own subscription; a link that stays deaf is resubscribed.
- **Hot-plug.** Links can be added (subscribe first, publish only once the fleet listens) and
  removed (stop publishing, keep listening for ``drain_grace``, then disconnect) at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wsfleet.bus.codec import BusCodec, BusDecodeError
from wsfleet.bus.dedup import DuplicateFilter
from wsfleet.bus.envelopes import meta_of, sender_of
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.outage import OutageBuffer
from wsfleet.bus.redis_link import Command, LinkError, LinkTimings, RedisLink
from wsfleet.bus.routing import Router
from wsfleet.bus.settings import FleetSettings
from wsfleet.protocol.errors import WsfleetError

if TYPE_CHECKING:
    from wsfleet.tracing import Tracing

log = logging.getLogger("wsfleet.bus")

MessageHandler = Callable[[str, dict[str, Any]], None]
HealthListener = Callable[[bool, dict[str, Any]], None]


REORDER_GUARD = 0.05
"""Seconds a returning Redis node waits after the others flushed, before it is used again."""


class BusUnavailableError(WsfleetError):
    """A publish could not be delivered to any Redis node (buffer full, too old, or no node)."""


@dataclass(slots=True)
class BusStats:
    published: int = 0
    #: Per channel name; the metrics exporter folds them into channel kinds at scrape time.
    published_by_channel: Counter[str] = field(default_factory=Counter)
    received_by_channel: Counter[bytes] = field(default_factory=Counter)
    duplicates_dropped: int = 0
    publish_retries: int = 0
    publish_failures: int = 0
    received: int = 0
    decode_errors: int = 0
    self_echo_dropped: int = 0
    probes_sent: int = 0
    probes_failed: int = 0
    deaf_repairs: int = 0
    probe_rtt: dict[str, float] = field(default_factory=dict)
    outage_refused: int = 0
    outage_expired: int = 0


class Bus:
    def __init__(self, settings: FleetSettings, on_message: MessageHandler) -> None:
        self.settings = settings
        self.name = settings.server_name
        self.boot = secrets.token_hex(6)
        self.codec = BusCodec(settings.serialization)
        self.router = Router(settings.strategy)
        self.key_router = Router()  # keyed commands always hash: a key lives on one Redis node
        self.dedup = DuplicateFilter()
        self.outage: OutageBuffer[Command] = OutageBuffer(
            settings.outage_buffer_size, settings.outage_buffer_max_age
        )
        self.stats = BusStats()
        self.tracing: Tracing | None = None
        self.links: dict[str, RedisLink] = {}
        self.configured: list[RedisNode] = list(settings.redis)
        self.health_listeners: list[HealthListener] = []
        self._on_message = on_message
        self._seq = itertools.count(1)
        self._refcounts: dict[str, int] = {}
        self._permanent: set[str] = set()
        self._desired: set[bytes] = set()
        self._probe_waiters: dict[str, asyncio.Future[float]] = {}
        self._probe_ok: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._started = False
        self._holds = 0
        self._admissions: dict[str, asyncio.Task[None]] = {}
        self.peers: Callable[[], Iterable[str]] = lambda: ()
        """Names of the live wsfleet nodes (the fleet's registry); a (re)connected link waits
        until each of them listens on it."""
        self._timings = LinkTimings(
            connect_timeout=settings.command_timeout,
            command_timeout=settings.command_timeout,
            ping_interval=settings.redis_ping_interval,
            ping_timeout=settings.redis_ping_timeout,
        )
        self.inbox = settings.inbox_channel(self.name)
        self._echo_marker = self.codec.key_marker("b", self.boot)
        """``"b": <our boot id>`` as encoded in the ``wsf`` field of everything we publish."""
        self.keep_subscribed(self.inbox, settings.control_channel)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._closing = False
        for node in self.configured:
            self._add_link(node, publishable=True)
        self._tasks.append(
            asyncio.create_task(self._maintenance_loop(), name="wsfleet-bus-maintenance")
        )
        self._tasks.append(asyncio.create_task(self._probe_loop(), name="wsfleet-bus-probe"))

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until at least one link publishes and every link listens to every channel."""
        async with asyncio.timeout(timeout):
            while True:
                usable = self.usable_links()
                if usable and all(
                    link.is_subscribed(self._desired) for link in self.links.values()
                ):
                    return
                waits = [
                    asyncio.ensure_future(link.wait_subscribed(self._desired))
                    for link in self.links.values()
                ]
                if not waits:
                    raise BusUnavailableError("no Redis node is configured")
                try:
                    await asyncio.wait(waits, timeout=0.05)
                finally:
                    for w in waits:
                        w.cancel()

    async def aclose(self) -> None:
        """Flush what is queued (best effort), then disconnect every link."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        links = list(self.links.values())
        self.links.clear()
        await asyncio.gather(*(link.aclose() for link in links), return_exceptions=True)
        for command in self.outage.drain():
            self._fail(command, BusUnavailableError("the bus was closed"))
        self._started = False

    # -- links and hot-plug ------------------------------------------------------------------

    def _add_link(self, node: RedisNode, *, publishable: bool) -> RedisLink:
        link = RedisLink(
            node,
            on_message=self._receive,
            on_health=self._health_changed,
            on_failed=self._failed,
            timings=self._timings,
        )
        link.publishable = publishable
        link.marker = self.inbox.encode()
        link.set_channels(self._desired)
        self.links[link.key] = link
        link.start()
        return link

    def usable_links(self) -> list[RedisLink]:
        return [
            link
            for link in self.links.values()
            if link.publishable and link.admitted and link.publisher_healthy
        ]

    async def add_redis_node(
        self, node: RedisNode, *, ready: Callable[[str], bool] | None = None
    ) -> bool:
        """Hot-add a Redis node: subscribe on it, then publish through it once ``ready(key)``
        says the whole fleet listens on it (or after ``hot_add_grace``). False if known already."""
        if node.key in self.links:
            return False
        link = self._add_link(node, publishable=False)
        try:
            async with asyncio.timeout(self.settings.hot_add_grace):
                await link.wait_subscribed(self._desired)
        except TimeoutError:
            log.warning("Redis %s: not subscribed within %.1fs", node, self.settings.hot_add_grace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.hot_add_grace
        # Other nodes report their subscriptions through the registry: poll it, bounded.
        while ready is not None and not ready(link.key) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(min(0.1, self.settings.lease_refresh))
        if self.links.get(link.key) is link:

            def publish_through_it() -> None:
                link.publishable = True

            await self._switch(after=publish_through_it)
            log.info("Redis %s added", node)
        return True

    async def remove_redis_node(self, key: str) -> bool:
        """Hot-remove: stop publishing through it, keep listening for ``drain_grace``, then
        disconnect. Messages queued on it are re-routed. False if unknown."""
        link = self.links.get(key)
        if link is None:
            return False

        def stop_publishing() -> None:
            link.publishable = False
            taken = link.take_queued()
            if taken:  # older than anything held meanwhile: they go first
                self.outage.requeue_front(taken, asyncio.get_running_loop().time())

        await self._switch(before=stop_publishing)
        await asyncio.sleep(self.settings.drain_grace)
        self.links.pop(key, None)
        await link.aclose()
        log.info("Redis %s removed", link.node)
        return True

    def subscribed_on(self) -> list[str]:
        """Keys of the links that listen to every channel of this node (for the registry)."""
        return [k for k, link in self.links.items() if link.is_subscribed(self._desired)]

    # -- subscriptions -----------------------------------------------------------------------

    def keep_subscribed(self, *channels: str) -> None:
        """Channels subscribed for the whole life of the bus (inbox, bridge, presets)."""
        for channel in channels:
            self._permanent.add(channel)
        self._sync_channels()

    def subscribe(self, channel: str) -> None:
        self._refcounts[channel] = self._refcounts.get(channel, 0) + 1
        if self._refcounts[channel] == 1:
            self._sync_channels()

    def unsubscribe(self, channel: str) -> None:
        count = self._refcounts.get(channel, 0) - 1
        if count > 0:
            self._refcounts[channel] = count
            return
        self._refcounts.pop(channel, None)
        self._sync_channels()

    async def wait_subscribed(self, *channels: str) -> None:
        raw = [c.encode() for c in channels]
        await asyncio.gather(*(link.wait_subscribed(raw) for link in self.links.values()))

    def _sync_channels(self) -> None:
        desired = {c.encode() for c in self._permanent} | {c.encode() for c in self._refcounts}
        if desired == self._desired:
            return
        self._desired = desired
        for link in self.links.values():
            link.set_channels(desired)

    # -- publishing --------------------------------------------------------------------------

    def meta(self, channel: str | None = None, **extra: Any) -> dict[str, Any]:
        """The ``wsf`` field of an envelope; with tracing on and ``channel`` given (for envelopes
        encoded before :meth:`publish_raw`), a producer span's context goes into it."""
        meta = {"b": self.boot, "s": next(self._seq), **extra}
        if channel is not None and self.tracing is not None:
            self.tracing.publish(channel, self.settings.channel_kind(channel), meta)
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
                self.tracing.publish(channel, self.settings.channel_kind(channel), wsf)
        data = self.codec.dumps(message)
        future = asyncio.get_running_loop().create_future() if want_result else None
        self.stats.published += 1
        self.stats.published_by_channel[channel] += 1
        self._dispatch(Command(("PUBLISH", channel, data), future, routing_key))
        return future

    def publish_raw(self, channel: str, data: bytes, routing_key: str) -> None:
        self.stats.published += 1
        self.stats.published_by_channel[channel] += 1
        self._dispatch(Command(("PUBLISH", channel, data), None, routing_key))

    def execute(
        self, args: tuple[Any, ...], routing_key: str, *, want_result: bool = True
    ) -> asyncio.Future[Any] | None:
        """Run a command on the Redis node that holds ``routing_key`` (rendezvous hash over the
        usable nodes, whatever the publish strategy)."""
        future = asyncio.get_running_loop().create_future() if want_result else None
        self._dispatch(Command(args, future, routing_key, retry=True, keyed=True))
        return future

    def link_for_key(self, routing_key: str) -> RedisLink | None:
        return self.key_router.pick(self.usable_links(), routing_key)

    def _pick(self, command: Command, exclude: RedisLink | None = None) -> RedisLink | None:
        candidates = self.usable_links()
        if exclude is not None and len(candidates) > 1:
            candidates = [c for c in candidates if c is not exclude]
        router = self.key_router if command.keyed else self.router
        return router.pick(candidates, command.routing_key)

    def _dispatch(self, command: Command, exclude: RedisLink | None = None) -> None:
        # Behind what is buffered or held, never past it: that keeps every target's order.
        if not self._holds and not len(self.outage):
            link = self._pick(command, exclude)
            if link is not None:
                link.submit(command)
                return
        if not self.outage.offer(command, asyncio.get_running_loop().time()):
            self.stats.outage_refused += 1
            self._fail(
                command,
                BusUnavailableError("no Redis node is usable and the outage buffer is full"),
            )
            return
        self._flush_outage()

    def _failed(self, link: RedisLink, commands: list[Command], error: BaseException) -> None:
        again: list[Command] = []
        for command in commands:
            if command.pinned:
                self._fail(command, LinkError(f"{link.node}: {error}"))
                continue
            command.attempts += 1
            if not command.retry or command.attempts >= self.settings.max_publish_attempts:
                self._fail(command, BusUnavailableError(f"publish failed on {link.node}: {error}"))
                continue
            self.stats.publish_retries += 1
            again.append(command)
        if not again:
            return
        others = [lk for lk in self.usable_links() if lk is not link]
        if self._holds or len(self.outage) or not others:
            # Older than anything buffered or held since: they go first.
            self.outage.requeue_front(again, asyncio.get_running_loop().time())
            self._flush_outage()
            return
        for command in again:
            self._dispatch(command, exclude=link)

    def _fail(self, command: Command, error: BaseException) -> None:
        if command.args and command.args[0] == "PUBLISH":
            self.stats.publish_failures += 1
        future = command.future
        if future is not None:
            if not future.done():
                future.set_exception(error)
        else:
            log.warning("dropped a publish to %r: %s", command.args[1:2], error)

    async def _switch(
        self,
        *,
        before: Callable[[], None] | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Move routing keys between links without reordering any target's messages.

        New publishes are held (in the outage buffer) while ``before`` runs, every link flushes
        what it was sending, ``REORDER_GUARD`` passes (the receivers read Redis nodes on separate
        sockets) and ``after`` runs; then everything held is flushed, oldest first.
        """
        loop = asyncio.get_running_loop()
        self._holds += 1
        try:
            if before is not None:
                before()
            deadline = loop.time() + 2 * self.settings.command_timeout
            while loop.time() < deadline and any(  # noqa: ASYNC110
                lk.in_flight for lk in self.links.values() if lk.publisher_healthy
            ):
                await asyncio.sleep(0.002)
            await asyncio.sleep(REORDER_GUARD)
            if after is not None:
                after()
        finally:
            self._holds -= 1
            self._flush_outage()

    def _start_admission(self, link: RedisLink) -> None:
        self._stop_admission(link)
        task = asyncio.create_task(self._admit(link), name=f"wsfleet-admit-{link.key}")
        self._admissions[link.key] = task
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _stop_admission(self, link: RedisLink) -> None:
        task = self._admissions.pop(link.key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _admit(self, link: RedisLink) -> None:
        """Let a link whose publisher (re)connected publish again, once it is safe: its own
        subscriber has every channel back and every other live node listens on it. A publish
        through a Redis node nobody listens to yet would be acknowledged and lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.hot_add_grace
        try:
            while not link.is_subscribed(self._desired):  # the wanted set may change meanwhile
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("Redis %s: subscriptions not confirmed in time", link.node)
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 0.1)):
                        await link.wait_subscribed(self._desired)
            await self._wait_peers(link, deadline)
        except LinkError:
            return  # closed meanwhile
        if self.links.get(link.key) is not link or not link.publisher_healthy:
            return

        def admit() -> None:
            if self.links.get(link.key) is link and link.publisher_healthy:
                link.admitted = True

        if link.publishable and any(lk is not link for lk in self.usable_links()):
            await self._switch(after=admit)  # it takes routing keys from the other links
        else:
            admit()
            self._flush_outage()
        log.info("Redis %s publishes again", link.node)

    async def _wait_peers(self, link: RedisLink, deadline: float) -> None:
        """Until every other live node has a subscriber on its inbox on ``link``'s Redis node."""
        loop = asyncio.get_running_loop()
        while True:
            names = sorted(set(self.peers()) - {self.name})
            if not names:
                return
            channels = [self.settings.inbox_channel(name) for name in names]
            try:
                reply = await link.call(
                    "PUBSUB", "NUMSUB", *channels, timeout=self.settings.command_timeout
                )
            except (LinkError, TimeoutError):
                reply = None
            counts = _numsub(reply)
            missing = [n for n, c in zip(names, channels, strict=True) if counts.get(c, 0) < 1]
            if not missing:
                return
            if loop.time() >= deadline:
                log.warning("Redis %s: %s not listening on it in time", link.node, missing)
                return
            if not link.publisher_healthy:
                raise LinkError(f"{link.node}: publisher lost")
            await asyncio.sleep(0.02)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def _flush_outage(self) -> None:
        if self._holds or not len(self.outage) or not self.usable_links():
            return
        for command in self.outage.drain():
            self._dispatch(command)

    def _health_changed(
        self, link: RedisLink, role: str, healthy: bool, event: str, error: str | None
    ) -> None:
        if role == "publisher":
            if healthy:
                if not link.closed:
                    self._start_admission(link)
            else:
                link.admitted = False
                self._stop_admission(link)
        links = list(self.links.values())
        info = {
            "host": link.node.host,
            "port": link.node.port,
            "serverName": self.name,
            "event": event,
            "isHealthy": healthy,
            "error": error,
            "healthySubscriberCount": sum(1 for lk in links if lk.subscriber_healthy),
            "healthyPublisherCount": sum(1 for lk in links if lk.publisher_healthy),
            "totalNodeCount": len(links),
            "type": role,
        }
        log.log(
            logging.INFO if healthy or event == "close" else logging.WARNING,
            "Redis %s %s %s",
            link.node,
            role,
            "healthy" if healthy else f"unhealthy ({error})",
        )
        for listener in list(self.health_listeners):
            try:
                listener(healthy, info)
            except Exception:
                log.exception("Redis health listener failed")

    # -- receiving ---------------------------------------------------------------------------

    def _receive(self, link: RedisLink, channel_raw: bytes, data: bytes) -> None:
        stats = self.stats
        stats.received += 1
        stats.received_by_channel[channel_raw] += 1
        if self._echo_marker in data:  # our own boot id: we published it, no need to decode
            stats.self_echo_dropped += 1
            return
        try:
            message = self.codec.loads(data)
        except BusDecodeError as exc:
            stats.decode_errors += 1
            log.debug("undecodable message on %r: %s", channel_raw, exc)
            return
        channel = channel_raw.decode("utf-8", "replace")
        if channel == self.inbox and message.get("action") == "probe":
            self._probe_returned(link, message)
            return
        if sender_of(message) == self.name:
            stats.self_echo_dropped += 1
            return
        wsf = message.get("wsf")
        if type(wsf) is dict:  # the fields of meta_of() that matter here, without a Meta
            boot, seq = wsf.get("b"), wsf.get("s")
            if type(boot) is str and type(seq) is int and not self.dedup.is_new(boot, seq):
                stats.duplicates_dropped += 1
                return
        if self.tracing is None:
            self._on_message(channel, message)
            return
        traceparent = meta_of(message).traceparent
        with self.tracing.receive(channel, self.settings.channel_kind(channel), traceparent):
            self._on_message(channel, message)

    # -- end-to-end probe --------------------------------------------------------------------

    async def probe(self, link: RedisLink) -> float:
        """Publish through ``link`` to our inbox and wait to read it back on ``link``."""
        token = secrets.token_hex(6)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._probe_waiters[token] = future
        start = loop.time()
        data = self.codec.dumps({"action": "probe", "args": {"t": token, "l": link.key}})
        self.stats.probes_sent += 1
        try:
            link.submit(Command(("PUBLISH", self.inbox, data), None, pinned=True, retry=False))
            async with asyncio.timeout(self.settings.probe_timeout):
                await future
            rtt = loop.time() - start
            self.stats.probe_rtt[link.key] = rtt
            self._probe_ok[link.key] = loop.time()
            return rtt
        finally:
            self._probe_waiters.pop(token, None)

    def _probe_returned(self, link: RedisLink, message: dict[str, Any]) -> None:
        args = message.get("args")
        if not isinstance(args, dict) or args.get("l") != link.key:
            return
        future = self._probe_waiters.get(str(args.get("t")))
        if future is not None and not future.done():
            future.set_result(0.0)

    async def probe_all(self) -> dict[str, float | None]:
        results: dict[str, float | None] = {}

        async def one(link: RedisLink) -> None:
            try:
                results[link.key] = await self.probe(link)
            except (TimeoutError, LinkError):
                results[link.key] = None
                self.stats.probes_failed += 1
                if link.subscriber_healthy and link.publisher_healthy:
                    self.stats.deaf_repairs += 1
                    log.warning("Redis %s: probe lost, resubscribing", link.node)
                    link.force_resubscribe()

        inbox = (self.inbox.encode(),)
        ready = [link for link in self.links.values() if link.is_subscribed(inbox)]
        for link in self.links.values():
            if link not in ready:
                results[link.key] = None
        await asyncio.gather(*(one(link) for link in ready))
        return results

    def working_paths(self) -> list[str]:
        """Keys of the Redis nodes through which our own probe made the round trip recently and
        whose connections are healthy now: readiness of a fleet node means this is not empty."""
        now = asyncio.get_running_loop().time()
        horizon = 2 * self.settings.probe_interval + self.settings.probe_timeout
        return [
            key
            for key, link in self.links.items()
            if link.publisher_healthy
            and link.subscriber_healthy
            and now - self._probe_ok.get(key, -horizon - now) <= horizon
        ]

    async def flush(self, timeout: float) -> bool:
        """Wait until the outage buffer and every link's queue are empty (used by the drain
        before disconnecting); False when ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.outage) or any(link.in_flight for link in self.links.values()):
                    self._flush_outage()
                    await asyncio.sleep(0.02)
        except TimeoutError:
            return False
        return True

    async def _probe_loop(self) -> None:
        while not self._closing:
            try:
                await self.probe_all()
            except Exception:
                log.exception("bus probe failed")
            interval = self.settings.probe_interval
            if not self.working_paths():  # starting, or every path lost: find one back soon
                interval = min(interval, 0.2)
            await asyncio.sleep(interval)

    async def _maintenance_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(0.5)
            now = asyncio.get_running_loop().time()

            def expired(command: Command) -> None:
                self.stats.outage_expired += 1
                self._fail(command, BusUnavailableError("no Redis node came back in time"))

            self.outage.expire(now, expired)
            self._flush_outage()


def _numsub(reply: Any) -> dict[str, int]:
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
