"""A link to the Redis master that Sentinels name (``redis+sentinel://host:port/<master>``).

It is a :class:`~wsfleet.bus.redis_link.RedisLink` whose publisher and subscriber ask the
Sentinels for the master's address before every (re)connect (redis-py's
``redis.asyncio.sentinel``). A failover is a reconnect:

- ``SENTINEL FAILOVER``: the Sentinels promote a replica, announce ``+switch-master`` and then
  reconfigure the old master as a replica, which kills its normal and pub/sub clients
  (``CLIENT KILL TYPE normal|pubsub``); both connections reconnect to the new master. Until
  then, every node still publishes and subscribes on the old one, so nothing is split.
- A killed master: connections fail, reconnects are refused until the Sentinels agree on the
  promotion (``down-after-milliseconds`` + election), then they reach the new master.

In both cases the bus does what it does for any link that comes back: the commands that got no
reply are retried, publishes wait in the outage buffer, and the link publishes again only once
every live node listens on the new master (its admission), so a failover loses nothing that was
not already acknowledged by the old master and unread (the limit of pub/sub, see
:mod:`wsfleet.bus.bus`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from wsfleet.bus.broker import BrokerEventHandler, LinkError, LinkTimings
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.redis_py import Redis, RedisError, Sentinel
from wsfleet.bus.redis_subscriber import RedisSubscriber
from wsfleet.bus.topology_nodes import addresses

log = logging.getLogger("wsfleet.bus")


class MasterResolver:
    """Asks the Sentinels of ``node`` for the address of its master."""

    def __init__(self, node: RedisNode, timings: LinkTimings) -> None:
        if node.service is None:
            raise ValueError(f"{node} names no Sentinel master")
        self.node = node
        self.service = node.service
        self.sentinel = Sentinel(
            addresses(node), socket_timeout=timings.connect_timeout, min_other_sentinels=0
        )
        self.current: tuple[str, int] | None = None

    async def resolve(self) -> RedisNode:
        try:
            host, port = await self.sentinel.discover_master(self.service)
        except (RedisError, OSError) as exc:
            raise LinkError(f"{self.node}: no Sentinel names a master ({exc})") from exc
        if self.current != (host, port):
            log.info("Sentinel %s: master %s is at %s:%s", self.node, self.service, host, port)
            self.current = (host, int(port))
        return dataclasses.replace(
            self.node, host=host, port=int(port), mode="node", seeds=(), service=None
        )

    async def aclose(self) -> None:
        for client in self.sentinel.sentinels:
            await client.aclose()


class _SentinelSubscriber(RedisSubscriber):
    async def resolve(self) -> RedisNode:
        link = self.link
        assert isinstance(link, SentinelLink)
        return await link.resolver.resolve()


class SentinelLink(RedisLink):
    """One Sentinel-managed master, followed across failovers."""

    subscriber_class = _SentinelSubscriber

    def __init__(
        self, node: RedisNode, handler: BrokerEventHandler, *, timings: LinkTimings | None = None
    ) -> None:
        timings = timings or LinkTimings()
        self.resolver = MasterResolver(node, timings)
        super().__init__(node, handler, timings=timings)

    def __repr__(self) -> str:
        return f"<SentinelLink {self.node}>"

    async def resolve(self) -> RedisNode:
        return await self.resolver.resolve()

    def start(self) -> None:
        if self.closed or self._tasks:
            return
        super().start()
        self._tasks.add(asyncio.create_task(self._watch(), name=f"wsfleet-sentinel-{self.key}"))

    async def _watch(self) -> None:
        """Follow ``+switch-master`` on one Sentinel at a time (the next one if it fails)."""
        backoff = self.timings.backoff_initial
        while not self.closed:
            for host, port in addresses(self.node):
                client = Redis(host=host, port=port, socket_connect_timeout=2.0)
                pubsub = client.pubsub()
                try:
                    await pubsub.subscribe("+switch-master")
                    backoff = self.timings.backoff_initial
                    async for message in pubsub.listen():
                        data = message.get("data")
                        if message.get("type") == "message" and isinstance(data, bytes):
                            self._switched(data.decode(errors="replace").split())
                except (RedisError, OSError) as exc:
                    log.debug("Sentinel %s:%s: %r", host, port, exc)
                finally:
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.timings.backoff_max)

    def _switched(self, fields: list[str]) -> None:
        """``<name> <old ip> <old port> <new ip> <new port>``: reconnect both connections."""
        if len(fields) != 5 or fields[0] != self.resolver.service:
            return
        if self.resolver.current == (fields[3], int(fields[4])):
            return
        log.warning("Sentinel %s: master moved to %s:%s", self.node, fields[3], fields[4])
        self.master_moved()

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.resolver.aclose()
