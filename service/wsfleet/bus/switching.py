"""Moving routing keys between broker links without reordering, and admitting a link back.

**Switching.** Whenever routing keys change hands (a link is admitted, a hot-added link starts
publishing, a removed one stops), :meth:`Switcher.switch` runs three states:

1. *holding*: new publishes wait in the outage buffer (the bus sees :attr:`Switcher.holding`)
   while ``before`` runs;
2. *draining*: until no healthy link has a command in flight (woken by the links' "idle" and
   health events, bounded by ``2 * command_timeout``);
3. *guard*: ``REORDER_GUARD`` on the clock (receivers read each broker on its own socket), then
   ``after`` runs and the held publishes are flushed, oldest first.

**Admission.** A link whose publisher (re)connected publishes again only once that is safe:
:class:`Admission` goes ``SUBSCRIBING`` (its own subscriber confirmed every channel) ->
``AWAITING_PEERS`` (every other live node has a subscriber on its inbox on that broker,
``PUBSUB NUMSUB``) -> ``SWITCHING`` -> ``ADMITTED``, bounded by ``hot_add_grace``; it ends
``ABANDONED`` when the publisher is lost or the link closed meanwhile. A publish through a broker
nobody listens to yet would be acknowledged and lost. Redis does not announce subscriptions, so
NUMSUB is asked again when the registry reports a change or on a timer (20 ms doubling to 320 ms).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Final, Protocol

from wsfleet.bus.broker import BrokerLink, LinkError, numsub_counts
from wsfleet.bus.settings import FleetSettings
from wsfleet.bus.signals import Pulse
from wsfleet.clock import Clock, sleep
from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.bus")

REORDER_GUARD: Final = 0.05
"""Seconds a returning broker waits after the others flushed, before it is used again."""

NUMSUB_RETRY_FIRST: Final = 0.02
NUMSUB_RETRY_MAX: Final = 0.32


class SwitchHost(Protocol):
    """What switching and admission need from the bus."""

    settings: FleetSettings
    name: str
    clock: Clock
    link_events: Pulse
    """Fired when a link's subscriptions, in-flight count or health change."""
    peer_events: Pulse
    """Fired when the registry's view of the live nodes was refreshed."""

    @property
    def links(self) -> dict[str, BrokerLink]: ...
    def usable_links(self) -> list[BrokerLink]: ...
    def wanted_channels(self) -> set[bytes]: ...
    def peer_names(self) -> list[str]: ...
    def flush_outage(self) -> None: ...


class Switcher:
    __slots__ = ("holds", "host")

    def __init__(self, host: SwitchHost) -> None:
        self.host = host
        self.holds = 0

    @property
    def holding(self) -> bool:
        return self.holds > 0

    async def switch(
        self,
        *,
        before: Callable[[], None] | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        host = self.host
        clock = host.clock
        self.holds += 1
        try:
            if before is not None:
                before()
            deadline = clock.now() + 2 * host.settings.command_timeout
            while any(lk.in_flight for lk in host.links.values() if lk.publisher_healthy):
                remaining = deadline - clock.now()
                if remaining <= 0:
                    break
                await host.link_events.wait(clock, remaining)
            await sleep(clock, REORDER_GUARD)
            if after is not None:
                after()
        finally:
            self.holds -= 1
            host.flush_outage()
            host.link_events.fire()  # routing changed: readiness and flush waiters look again


class AdmissionState(StrEnum):
    SUBSCRIBING = "subscribing"
    AWAITING_PEERS = "awaiting-peers"
    SWITCHING = "switching"
    ADMITTED = "admitted"
    ABANDONED = "abandoned"


class Admission:
    """One link's way back to publishing (see the module docstring)."""

    __slots__ = ("deadline", "host", "link", "state", "switcher")

    def __init__(self, host: SwitchHost, switcher: Switcher, link: BrokerLink) -> None:
        self.host = host
        self.switcher = switcher
        self.link = link
        self.state = AdmissionState.SUBSCRIBING
        self.deadline = host.clock.now() + host.settings.hot_add_grace

    def _current(self) -> bool:
        link = self.link
        return self.host.links.get(link.key) is link and link.publisher_healthy

    async def run(self) -> None:
        host, link, clock = self.host, self.link, self.host.clock
        try:
            while not link.is_subscribed(host.wanted_channels()):  # the wanted set may change
                if clock.now() >= self.deadline:
                    log.warning("Redis %s: subscriptions not confirmed in time", link.node)
                    break
                await host.link_events.wait(clock, self.deadline - clock.now())
            self.state = AdmissionState.AWAITING_PEERS
            await self._await_peers()
        except LinkError:
            self.state = AdmissionState.ABANDONED  # closed meanwhile
            return
        if not self._current():
            self.state = AdmissionState.ABANDONED
            return

        def admit() -> None:
            if self._current():
                link.admitted = True
                self.state = AdmissionState.ADMITTED
                host.link_events.fire()
            else:
                self.state = AdmissionState.ABANDONED

        if link.publishable and any(lk is not link for lk in host.usable_links()):
            self.state = AdmissionState.SWITCHING
            await self.switcher.switch(after=admit)  # it takes routing keys from the others
        else:
            admit()
            host.flush_outage()
        if self.state is AdmissionState.ADMITTED:
            log.info("Redis %s publishes again", link.node)

    async def _await_peers(self) -> None:
        host, link, clock = self.host, self.link, self.host.clock
        retry = NUMSUB_RETRY_FIRST
        while True:
            names = host.peer_names()
            if not names:
                return
            channels = [host.settings.inbox_channel(name) for name in names]
            shared = self._shared_channels()
            try:
                reply = await link.call(
                    "PUBSUB", "NUMSUB", *channels, *shared, timeout=host.settings.command_timeout
                )
            except (LinkError, TimeoutError):
                reply = None
            counts = numsub_counts(reply)
            missing = [n for n, c in zip(names, channels, strict=True) if counts.get(c, 0) < 1]
            missing += [c for c in shared if counts.get(c, 0) < len(names) + 1]
            if not missing:
                return
            if clock.now() >= self.deadline:
                log.warning("Redis %s: %s not listening on it in time", link.node, missing)
                return
            if not link.publisher_healthy:
                raise LinkError(f"{link.node}: publisher lost")
            await host.peer_events.wait(clock, min(retry, self.deadline - clock.now()))
            retry = min(retry * 2, NUMSUB_RETRY_MAX)

    def _shared_channels(self) -> list[str]:
        """On a Redis Cluster, the fleet-wide channels this node listens to: each lives on one
        shard, and after a failover or a reshard every node must listen there again (this node
        and each peer: a count of peers + 1) before messages go to the new master."""
        if self.link.node.mode != "cluster":
            return []
        settings, wanted = self.host.settings, self.host.wanted_channels()
        fleet_wide = (
            settings.control_channel,
            settings.bridge_channel,
            settings.private_channel,
            settings.broadcast_channel,
        )
        return [c for c in fleet_wide if c.encode() in wanted]


class Admissions:
    """At most one :class:`Admission` per link, each an owned task of the bus."""

    __slots__ = ("_running", "host", "switcher", "tasks")

    def __init__(self, host: SwitchHost, switcher: Switcher, tasks: TaskOwner) -> None:
        self.host = host
        self.switcher = switcher
        self.tasks = tasks
        self._running: dict[str, tuple[Admission, asyncio.Task[None]]] = {}

    def state(self, key: str) -> AdmissionState | None:
        running = self._running.get(key)
        return running[0].state if running is not None else None

    def start(self, link: BrokerLink) -> None:
        self.stop(link)
        if self.tasks.closing:
            return
        admission = Admission(self.host, self.switcher, link)
        task = self.tasks.start(admission.run(), f"wsfleet-admit-{link.key}")
        self._running[link.key] = (admission, task)
        task.add_done_callback(lambda t: self._done(link.key, t))

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        running = self._running.get(key)
        if running is not None and running[1] is task:
            del self._running[key]

    def stop(self, link: BrokerLink) -> None:
        running = self._running.pop(link.key, None)
        if running is not None and running[1] is not asyncio.current_task():
            running[0].state = AdmissionState.ABANDONED
            running[1].cancel()
