"""End-to-end probes: each link publishes to this node's inbox and must read it back itself.

A probe is one message through one broker: published through the link's publisher, read on
that link's own subscription. A link that stays deaf (the probe is lost while both of its
connections look healthy, and the subscriber did not reconnect meanwhile) is resubscribed: a
resubscription drops what the link's peers publish until it is back, so a probe lost to a
master switch (published on the new master while the subscriber still read the old one) must
not cause one. A probe fails as soon as its PUBLISH fails; a link
that worked before and has lost its inbox subscription counts as a failed probe too.
:meth:`Prober.working_paths` (the brokers whose round trip succeeded recently) is what readiness
of a fleet node means. Probes run on a timer of the injected clock: every ``probe_interval``,
every 0.2 s while no path works.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, Protocol

from wsfleet.bus.auth import BusAuth
from wsfleet.bus.broker import BrokerLink, Command, LinkError
from wsfleet.bus.codec import BusCodec
from wsfleet.bus.settings import FleetSettings
from wsfleet.clock import Clock, sleep, wait_with_timeout

log = logging.getLogger("wsfleet.bus")

STARTING_INTERVAL = 0.2


def _lost(sent: asyncio.Future[Any], probe: asyncio.Future[None]) -> None:
    """The probe's PUBLISH failed (its link's publisher was lost): the probe fails now."""
    if not sent.cancelled() and sent.exception() is not None and not probe.done():
        probe.set_exception(LinkError(f"probe not sent: {sent.exception()}"))


class ProbeHost(Protocol):
    settings: FleetSettings
    clock: Clock
    codec: BusCodec
    auth: BusAuth
    inbox: str

    @property
    def links(self) -> dict[str, BrokerLink]: ...


class ProbeStats(Protocol):
    probes_sent: int
    probes_failed: int
    deaf_repairs: int
    probe_rtt: dict[str, float]


class Prober:
    def __init__(self, host: ProbeHost, stats: ProbeStats) -> None:
        self.host = host
        self.stats = stats
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._ok: dict[str, float] = {}

    async def probe(self, link: BrokerLink) -> float:
        """Publish through ``link`` to our inbox and wait to read it back on ``link``."""
        host = self.host
        clock = host.clock
        token = secrets.token_hex(6)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[token] = future
        start = clock.now()
        data = host.codec.dumps({"action": "probe", "args": {"t": token, "l": link.key}})
        data = host.auth.seal(data, host.inbox)
        self.stats.probes_sent += 1
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sent.add_done_callback(lambda done: _lost(done, future))
        try:
            link.submit(Command(("PUBLISH", host.inbox, data), sent, pinned=True, retry=False))
            await wait_with_timeout(clock, future, host.settings.probe_timeout)
            rtt = clock.now() - start
            self.stats.probe_rtt[link.key] = rtt
            self._ok[link.key] = clock.now()
            return rtt
        finally:
            self._waiters.pop(token, None)

    def returned(self, link: BrokerLink, message: dict[str, Any]) -> None:
        """A probe read back on ``link`` (it counts only on the link it was sent through)."""
        args = message.get("args")
        if not isinstance(args, dict) or args.get("l") != link.key:
            return
        future = self._waiters.get(str(args.get("t")))
        if future is not None and not future.done():
            future.set_result(None)

    async def probe_all(self) -> dict[str, float | None]:
        results: dict[str, float | None] = {}
        stats = self.stats

        async def one(link: BrokerLink) -> None:
            reconnects = link.health.reconnects
            try:
                results[link.key] = await self.probe(link)
            except (TimeoutError, LinkError) as exc:
                results[link.key] = None
                stats.probes_failed += 1
                if isinstance(exc, LinkError):  # e.g. NOPERM: an ACL user without &channel
                    link.health.last_error = f"{link.node}: probe not sent ({exc})"
                if link.health.reconnects != reconnects:
                    return  # the subscriber moved while the probe flew (a master switch)
                if link.subscriber_healthy and link.publisher_healthy:
                    stats.deaf_repairs += 1
                    log.warning("Redis %s: probe lost, resubscribing", link.node)
                    link.force_resubscribe()

        inbox = (self.host.inbox.encode(),)
        links = list(self.host.links.values())
        ready = [link for link in links if link.is_subscribed(inbox)]
        for link in links:
            if link not in ready:
                results[link.key] = None
                if link.key in self._ok:  # a path that worked cannot even be probed now
                    stats.probes_failed += 1
        await asyncio.gather(*(one(link) for link in ready))
        return results

    def working_paths(self) -> list[str]:
        host = self.host
        now = host.clock.now()
        horizon = 2 * host.settings.probe_interval + host.settings.probe_timeout
        return [
            key
            for key, link in host.links.items()
            if link.publisher_healthy
            and link.subscriber_healthy
            and now - self._ok.get(key, -horizon - now) <= horizon
        ]

    def forget(self, key: str) -> None:
        self._ok.pop(key, None)

    async def run(self) -> None:
        """Probe every link, forever (an owned task of the bus)."""
        while True:
            try:
                await self.probe_all()
            except Exception:
                log.exception("bus probe failed")
            interval = self.host.settings.probe_interval
            if not self.working_paths():  # starting, or every path lost: find one back soon
                interval = min(interval, STARTING_INTERVAL)
            await sleep(self.host.clock, interval)
