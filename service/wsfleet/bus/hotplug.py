"""Adding and removing a broker node while the fleet runs.

- **Add**: the new link subscribes to every channel first (``publishable`` is False); it takes
  routing keys only once ``ready(key)`` says every live node listens on it (the registry's
  refreshes wake the wait) or ``hot_add_grace`` passed, through a reorder-free switch.
- **Remove**: a switch in which the link stops publishing (what it had queued goes back to the
  front of the outage buffer, older than anything held), then ``drain_grace`` of listening, then
  the link is closed. While it drains the link is in ``host.draining``; a removal cancelled then
  (the node is listed again) puts the link back to publishing through a switch, never closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from wsfleet.bus.broker import BrokerLink, Command, LinkError
from wsfleet.bus.outage import OutageBuffer
from wsfleet.bus.switching import Switcher, SwitchHost

log = logging.getLogger("wsfleet.bus")


class HotPlugHost(SwitchHost, Protocol):
    switcher: Switcher
    outage: OutageBuffer[Command]
    draining: dict[str, BrokerLink]

    @property
    def closing(self) -> bool: ...


async def hot_add(host: HotPlugHost, link: BrokerLink, ready: Callable[[str], bool] | None) -> bool:
    clock = host.clock
    deadline = clock.now() + host.settings.hot_add_grace
    try:
        while not link.is_subscribed(host.wanted_channels()):
            if link.closed or host.closing:
                return False
            if clock.now() >= deadline:
                log.warning("Redis %s: not subscribed within the grace", link.node)
                break
            await host.link_events.wait(clock, deadline - clock.now())
        # Other nodes report their subscriptions through the registry's refreshes.
        while ready is not None and not ready(link.key) and clock.now() < deadline:
            if link.closed or host.closing:
                return False
            await host.peer_events.wait(clock, deadline - clock.now())
    except LinkError:
        return False
    if host.links.get(link.key) is not link or host.closing:
        return False

    def publish_through_it() -> None:
        link.publishable = True

    await host.switcher.switch(after=publish_through_it)
    log.info("Redis %s added", link.node)
    return True


async def hot_remove(host: HotPlugHost, link: BrokerLink) -> bool:
    """True when the link was removed, False when the removal was cancelled while draining."""

    def stop_publishing() -> None:
        link.publishable = False
        taken = link.take_queued()
        if taken:  # older than anything held meanwhile: they go first
            host.outage.requeue_front(taken, host.clock.now())

    host.draining[link.key] = link
    cancelled = False
    try:
        await host.switcher.switch(before=stop_publishing)
        clock = host.clock
        deadline = clock.now() + host.settings.drain_grace
        # A closing bus cuts the grace short; a cancelled removal ends it.
        while not host.closing and clock.now() < deadline:
            if host.draining.get(link.key) is not link:
                break
            await host.link_events.wait(clock, deadline - clock.now())
        cancelled = host.draining.get(link.key) is not link and not host.closing
    finally:
        if host.draining.get(link.key) is link:
            del host.draining[link.key]
        if not cancelled:
            if host.links.get(link.key) is link:
                del host.links[link.key]
            await link.aclose()
    if cancelled:

        def publish_through_it() -> None:
            link.publishable = True

        await host.switcher.switch(after=publish_through_it)
        log.info("Redis %s: removal cancelled (listed again)", link.node)
        return False
    log.info("Redis %s removed", link.node)
    return True
