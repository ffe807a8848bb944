"""Publishes that cannot go out now: the outage buffer, retries on another link, expiry.

- A publish arriving while no link is usable, or while a switch holds publishes, waits in the
  bounded :class:`~wsfleet.bus.outage.OutageBuffer` (refused at once when full); it is flushed,
  oldest first, as soon as a link is usable and no switch holds.
- Commands a failed link hands back are retried on another usable link (up to
  ``max_publish_attempts``); with none, or while something is buffered or held, they go to the
  *front* of the buffer: they are older than anything buffered since.
- The flush is paced: ``outage_flush_bytes`` per step, the next step once every usable link
  answered everything in flight (the bus calls :meth:`Failover.flush` when a link goes idle) and
  not before ``outage_flush_rate`` allows (a timer), so a burst of megabytes cannot overrun the
  other nodes' subscriber connections (Redis would cut them off as slow consumers).
- Entries older than ``outage_buffer_max_age`` fail on a timer armed at the oldest entry's
  deadline (no periodic sweep).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from wsfleet.bus.broker import BrokerLink, Command, LinkError
from wsfleet.bus.outage import OutageBuffer
from wsfleet.bus.settings import FleetSettings
from wsfleet.bus.signals import Pulse
from wsfleet.bus.stats import BusStats, BusUnavailableError
from wsfleet.bus.switching import Switcher
from wsfleet.clock import Clock, TimerHandle

log = logging.getLogger("wsfleet.bus")


class FailoverHost(Protocol):
    settings: FleetSettings
    clock: Clock
    outage: OutageBuffer[Command]
    switcher: Switcher
    link_events: Pulse

    def usable_links(self) -> list[BrokerLink]: ...

    def pick_link(self, command: Command) -> BrokerLink | None: ...


Dispatch = Callable[[Command, BrokerLink | None], None]


class Failover:
    __slots__ = ("_dispatch", "_expiry", "_next_step", "_pace", "host", "stats")

    def __init__(self, host: FailoverHost, stats: BusStats, dispatch: Dispatch) -> None:
        self.host = host
        self._dispatch = dispatch
        """Routes a command again (``exclude``: the link it failed on)."""
        self.stats = stats
        self._expiry: TimerHandle | None = None
        self._pace: TimerHandle | None = None
        self._next_step = 0.0
        """Clock time before which the paced flush takes no further step."""

    def keep(self, command: Command) -> None:
        """Buffer ``command`` (no usable link now, or a switch holds, or others wait)."""
        host = self.host
        if not host.outage.offer(command, host.clock.now()):
            self.stats.outage_refused += 1
            self.fail(
                command,
                BusUnavailableError("no Redis node is usable and the outage buffer is full"),
            )
            return
        self._arm_expiry()
        self.flush()

    def flush(self) -> None:
        host = self.host
        if host.switcher.holds or not len(host.outage):
            return
        usable = host.usable_links()
        if not usable or any(link.in_flight for link in usable):
            return  # the last step is still in flight: the link going idle flushes again
        clock = host.clock
        now = clock.now()
        if now < self._next_step:
            if self._pace is None:
                self._pace = clock.call_later(self._next_step - now, self._paced)
            return
        before = host.outage.bytes
        step = host.outage.take(host.settings.outage_flush_bytes)
        self._next_step = now + (before - host.outage.bytes) / host.settings.outage_flush_rate
        for i, command in enumerate(step):
            link = host.pick_link(command)
            if link is None:
                host.outage.requeue_front(step[i:], host.clock.now())
                break
            link.submit(command)
        host.link_events.fire()

    def _paced(self) -> None:
        self._pace = None
        self.flush()

    def link_failed(self, link: BrokerLink, commands: list[Command], error: BaseException) -> None:
        host = self.host
        again: list[Command] = []
        for command in commands:
            if command.pinned:
                self.fail(command, LinkError(f"{link.node}: {error}"))
                continue
            command.attempts += 1
            if not command.retry or command.attempts >= host.settings.max_publish_attempts:
                self.fail(command, BusUnavailableError(f"publish failed on {link.node}: {error}"))
                continue
            self.stats.publish_retries += 1
            again.append(command)
        if not again:
            return
        others = [lk for lk in host.usable_links() if lk is not link]
        if host.switcher.holds or len(host.outage) or not others:
            # Older than anything buffered or held since: they go first.
            host.outage.requeue_front(again, host.clock.now())
            self._arm_expiry()
            self.flush()
            return
        dispatch = self._dispatch
        for command in again:
            dispatch(command, link)

    def fail(self, command: Command, error: BaseException) -> None:
        if command.args and command.args[0] == "PUBLISH":
            self.stats.publish_failures += 1
        future = command.future
        if future is not None:
            if not future.done():
                future.set_exception(error)
        else:
            log.warning("dropped a publish to %r: %s", command.args[1:2], error)

    def close(self, error: BaseException) -> None:
        """Fail everything still buffered (the bus is closing)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._pace is not None:
            self._pace.cancel()
            self._pace = None
        for command in self.host.outage.drain():
            self.fail(command, error)

    def _arm_expiry(self) -> None:
        oldest = self.host.outage.oldest()
        if self._expiry is not None or oldest is None:
            return
        clock = self.host.clock
        due = oldest + self.host.outage.max_age - clock.now()
        self._expiry = clock.call_later(max(due, 0.0) + 0.001, self._expire)

    def _expire(self) -> None:
        self._expiry = None

        def expired(command: Command) -> None:
            self.stats.outage_expired += 1
            self.fail(command, BusUnavailableError("no Redis node came back in time"))

        self.host.outage.expire(self.host.clock.now(), expired)
        self.flush()
        self._arm_expiry()
