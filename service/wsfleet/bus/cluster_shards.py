"""The subscriber side of a cluster link: one sharded subscriber per shard that owns a wanted
channel (and none for the others), and the ``PUBSUB SHARDNUMSUB`` reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from wsfleet.bus.broker import BrokerLink, LinkError, LinkHealth, LinkTimings, MessageCallback
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_py import ClusterNode, ResponseError
from wsfleet.bus.redis_subscriber import RedisSubscriber
from wsfleet.bus.slots import key_slot

Address = tuple[str, int]


class ShardSubscriber(RedisSubscriber):
    """``SSUBSCRIBE`` on one shard master."""

    subscribe_command = "SSUBSCRIBE"
    unsubscribe_command = "SUNSUBSCRIBE"
    message_kind = b"smessage"
    subscribe_kind = b"ssubscribe"
    unsubscribe_kind = b"sunsubscribe"
    subscribe_batch = 1

    on_lost: Callable[[], None] = staticmethod(lambda: None)
    """Set by the cluster link: refresh the slot map."""

    def lost_channel(self, channel: bytes | None) -> None:
        # Asked for again on the next reconcile: a refresh may put the channel back on this
        # shard (a map older than the move), and the retry then meets MOVED again.
        self.forget_unconfirmed()
        self.on_lost()


class ShardSubscribers:
    """A :class:`ShardSubscriber` on each master owning a wanted channel's slot."""

    def __init__(
        self,
        link: BrokerLink,
        template: RedisNode,
        timings: LinkTimings,
        *,
        on_message: MessageCallback,
        on_confirmed: Callable[[BrokerLink], None],
        on_health: Callable[[bool, str | None], None],
        on_lost: Callable[[], None],
        retire: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self.link = link
        self.template = template
        self.timings = timings
        self._on_message = on_message
        self._on_confirmed = on_confirmed
        self._on_health = on_health
        """(shard healthy, error): a shard's subscriber connected or failed."""
        self._on_lost = on_lost
        self._retire = retire
        self.desired: set[bytes] = set()
        self.owner: dict[bytes, Address] = {}
        self.subs: dict[Address, ShardSubscriber] = {}
        self.up: dict[Address, bool] = {}
        self.tasks: dict[Address, list[asyncio.Task[None]]] = {}

    @property
    def all_up(self) -> bool:
        """Every shard it needs is connected (True when it needs none)."""
        return all(self.up.get(a, False) for a in self.subs)

    @property
    def all_confirmed(self) -> bool:
        """Every wanted channel is confirmed on the shard the slot map names."""
        return self.is_subscribed(self.desired)

    def by_shard(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for channel, (host, port) in self.owner.items():
            out.setdefault(f"{host}:{port}", []).append(channel.decode())
        return {k: sorted(v) for k, v in out.items()}

    def apply(self, slots: Mapping[int, Sequence[ClusterNode]]) -> None:
        """Put each wanted channel on the subscriber of the master owning its slot."""
        owner: dict[bytes, Address] = {}
        for channel in self.desired:
            nodes = slots.get(key_slot(channel))
            if nodes:
                owner[channel] = (nodes[0].host, int(nodes[0].port))
        self.owner = owner
        wanted: dict[Address, set[bytes]] = {}
        for channel, address in owner.items():
            wanted.setdefault(address, set()).add(channel)
        for address in [a for a in self.subs if a not in wanted]:
            self._drop(address)
        for address, channels in wanted.items():
            sub = self.subs.get(address) or self._add(address)
            sub.set_channels(channels)

    def update(
        self,
        added: set[bytes],
        removed: set[bytes],
        slots: Mapping[int, Sequence[ClusterNode]],
    ) -> None:
        """Place the channels that became wanted on their slot's master and take the others
        off theirs, without touching the rest (:meth:`apply` places them all, on a new map)."""
        self.desired |= added
        self.desired -= removed
        gone: dict[Address, set[bytes]] = {}
        for channel in removed:
            address = self.owner.pop(channel, None)
            if address is not None:
                gone.setdefault(address, set()).add(channel)
        new: dict[Address, set[bytes]] = {}
        for channel in added:
            nodes = slots.get(key_slot(channel))
            if nodes:
                address = (nodes[0].host, int(nodes[0].port))
                self.owner[channel] = address
                new.setdefault(address, set()).add(channel)
        for address in gone.keys() | new.keys():
            sub = self.subs.get(address)
            if sub is None:
                if address not in new:
                    continue
                sub = self._add(address)
            sub.update_channels(new.get(address, set()), gone.get(address, set()))

    def is_subscribed(self, channels: Iterable[bytes]) -> bool:
        for channel in channels:
            address = self.owner.get(channel)
            sub = self.subs.get(address) if address is not None else None
            if sub is None or not sub.confirmations.covers((channel,)):
                return False
        return True

    def force_resubscribe(self) -> None:
        for sub in self.subs.values():
            sub.force_resubscribe()

    def ping(self, now: float) -> None:
        for sub in list(self.subs.values()):
            sub.ping(now)

    def close(self, error: BaseException) -> list[asyncio.Task[None]]:
        """Cancel every subscriber's tasks (returned, for the caller to await) and close them."""
        tasks = [t for ts in self.tasks.values() for t in ts]
        for task in tasks:
            task.cancel()
        self.tasks.clear()
        for sub in self.subs.values():
            sub.close(error)
        self.subs.clear()
        return tasks

    def _add(self, address: Address) -> ShardSubscriber:
        host, port = address
        node = RedisNode(
            host=host,
            port=port,
            username=self.template.username,
            password=self.template.password,
            tls=self.template.tls,
        )
        sub = ShardSubscriber(
            self.link,
            node,
            self.timings,
            LinkHealth(),
            lambda role, healthy, event, error: self._health(address, healthy, error),
        )
        sub.on_lost = self._on_lost
        self.subs[address] = sub
        self.up[address] = False
        self.tasks[address] = [
            asyncio.create_task(
                sub.run(self._on_message, self._on_confirmed),
                name=f"wsfleet-cluster-sub-{host}:{port}",
            ),
            asyncio.create_task(sub.reconcile_loop(), name=f"wsfleet-cluster-subs-{host}:{port}"),
        ]
        return sub

    def _drop(self, address: Address) -> None:
        sub = self.subs.pop(address)
        self.up.pop(address, None)
        sub.close(LinkError(f"{address[0]}:{address[1]} no longer owns a wanted channel"))
        for task in self.tasks.pop(address, []):
            task.cancel()
            self._retire(task)

    def _health(self, address: Address, healthy: bool, error: str | None) -> None:
        if address in self.subs:
            self.up[address] = healthy
            self._on_health(healthy, error)


def shardnumsub_count(reply: Any, channel: bytes) -> int:
    """``PUBSUB SHARDNUMSUB`` as redis-py returns it (a list, pairs or a map)."""
    if isinstance(reply, dict):
        for key, value in reply.items():
            if (key.encode() if isinstance(key, str) else key) == channel:
                return int(value)
        return 0
    if isinstance(reply, list | tuple):
        items = list(reply)
        if items and isinstance(items[0], list | tuple):
            return int(items[0][1])
        if len(items) >= 2:
            return int(items[1])
    raise ResponseError(f"unexpected PUBSUB SHARDNUMSUB reply {reply!r}")
