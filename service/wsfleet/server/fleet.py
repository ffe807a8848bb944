"""A node's membership in a fleet: the adapter between the :class:`~wsfleet.server.hub.Hub` and
the bus.

:class:`Fleet` builds the bus and the fleet's parts, and plays two declared roles:
:class:`~wsfleet.server.ports.Propagation` for the Hub (local sends and registrations turned into
bus envelopes in the original's formats, room-namespace subscriptions reference-counted) and
:class:`~wsfleet.server.ports.FleetMembership` for the lifecycle (start, readiness, flush, close).
What arrives from the bus goes through :class:`~wsfleet.server.fleet_inbound.BusInbound`, the
one handler the bus calls. The Fleet uses only the Hub's public methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus
from wsfleet.bus.directory import SocketDirectory
from wsfleet.bus.private_ids import send_many
from wsfleet.bus.registry import Registry
from wsfleet.bus.rpc import PendingCalls
from wsfleet.bus.settings import FleetSettings
from wsfleet.contract import ControlAction
from wsfleet.server.cross import CrossServer
from wsfleet.server.fleet_control import FleetControl
from wsfleet.server.fleet_inbound import BusInbound
from wsfleet.server.hub import Hub
from wsfleet.tasks import TaskOwner
from wsfleet.version import __version__

log = logging.getLogger("wsfleet.fleet")


class Fleet:
    def __init__(self, hub: Hub, settings: FleetSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.name = settings.server_name
        #: Control actions, async cross-server listeners and custom channel handlers.
        self.tasks = TaskOwner("fleet")
        #: Loops that run while the node is in the fleet (socket leases, the node list).
        self.loops = TaskOwner("fleet loops")
        self.inbound = BusInbound(hub, settings, self.tasks)
        self.bus = Bus(settings, self.inbound)
        self.registry = Registry(self.bus, self._describe)
        self.directory = SocketDirectory(self.bus)
        self.bus.peers = self.registry.recent
        self.cross = CrossServer(self.bus, self.registry, hub, settings, self.tasks)
        self.control = FleetControl(self.bus, self.registry, hub, settings, self.tasks)
        self.inbound.bind(self.bus, self.cross, self.control)
        self._ns_subscribed: set[str] = set()
        #: Awaited once the node is in the fleet (registered), before it accepts sockets.
        self.started: list[Callable[[], Awaitable[None]]] = []
        self.bus.keep_subscribed(
            settings.bridge_channel, settings.private_channel, settings.broadcast_channel
        )
        for namespace in settings.preset_room_namespaces:
            self.bus.keep_subscribed(settings.room_channel(namespace))
        for channel in settings.custom_channels:
            self.bus.keep_subscribed(channel)

    @property
    def calls(self) -> PendingCalls:
        """The pending cross-server calls (``PendingCalls``)."""
        return self.cross.calls

    # -- FleetMembership: what the lifecycle calls -----------------------------------------------

    async def start(self, ready_timeout: float = 10.0) -> None:
        self.tasks.reopen()
        self.loops.reopen()
        config_dir = self.settings.config_dir
        if config_dir is not None:
            self.control.read_listed(config_dir)
        await self.bus.start()
        try:
            await self.bus.wait_ready(ready_timeout)
        except TimeoutError:
            log.warning("no Redis node answered within %.0fs; starting not ready", ready_timeout)
        await self.registry.start()
        for hook in self.started:
            await hook()
        self.loops.spawn(self._lease_loop(), "wsfleet-socket-leases")
        if config_dir is not None:
            self.loops.spawn(self.control.watch_config_dir(config_dir), "wsfleet-config-dir")
        log.info("node %s joined the fleet (%d Redis nodes)", self.name, len(self.bus.links))

    async def aclose(self) -> None:
        await self.loops.aclose()
        await self.tasks.aclose()  # before the bus: a redis.add in flight must not outlive it
        self.cross.calls.fail_all("this node is shutting down")
        try:
            await self.registry.aclose()
        finally:
            await self.bus.aclose()

    def has_working_path(self) -> bool:
        return bool(self.bus.working_paths())

    def link_problems(self) -> list[str]:
        problems = []
        for link in self.bus.links.values():
            error = link.health.last_error
            if error:
                node = str(link.node)
                problems.append(f"Redis {error}" if node in error else f"Redis {node}: {error}")
        return problems

    async def flush(self, timeout: float) -> bool:
        return await self.bus.flush(timeout)

    def _describe(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "sockets": self.hub.socket_count,
            "connections": self.hub.connection_count,
        }

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_refresh)
            try:
                lost = await self.directory.refresh(self.hub.socket_ids())
                if lost:
                    log.info("%d socket ids are now held by other nodes", lost)
            except Exception:
                log.exception("socket lease refresh failed")

    # -- Propagation: what the Hub calls ----------------------------------------------------------

    def publish_broadcast(self, text: bytes) -> None:
        message = env.broadcast(text.decode(), self.name, self.bus.meta())
        self.bus.publish(self.settings.broadcast_channel, message, "*broadcast")

    def publish_room(self, namespace: str, room_id: str, text: bytes, exclude: list[str]) -> None:
        message = env.room(text.decode(), namespace, room_id, self.name, exclude, self.bus.meta())
        channel = self.room_channel_for(namespace, room_id)
        self.bus.publish(channel, message, f"room:{namespace}:{room_id}")

    @property
    def per_room(self) -> bool:
        """Rooms have channels of their own on a Redis Cluster (sharded pub/sub: a room's
        messages reach only the nodes with a member); elsewhere a namespace shares one channel,
        as with the original."""
        return self.bus.sharded

    def room_channel_for(self, namespace: str, room_id: str) -> str:
        if self.bus.sharded:
            return self.settings.room_channel_of(namespace, room_id)
        return self.settings.room_channel(namespace)

    def room_used(self, namespace: str, room_id: str) -> None:
        self.bus.subscribe(self.settings.room_channel_of(namespace, room_id))

    def room_emptied(self, namespace: str, room_id: str) -> None:
        self.bus.unsubscribe(self.settings.room_channel_of(namespace, room_id))

    async def room_confirmed(self, namespace: str, room_id: str, timeout: float | None) -> None:
        """Wait until every Redis node confirmed this node's subscription to the channel the
        room's messages come on (its namespace's, or on a cluster its own). Raises
        ``TimeoutError``."""
        if not self.bus.sharded:
            await self.namespace_confirmed(namespace, timeout)
            return
        channel = self.settings.room_channel_of(namespace, room_id)
        if channel.encode() not in self.bus.channels.wanted:
            return  # no local member: nothing to wait for
        if all(link.is_subscribed((channel.encode(),)) for link in self.bus.links.values()):
            return
        async with asyncio.timeout(timeout):
            await self.bus.wait_subscribed(channel)

    def send_private(self, socket_ids: Iterable[str], text: bytes) -> bool:
        decoded = text.decode()
        for socket_id in socket_ids:
            self.directory.send(socket_id, self.private_envelope(socket_id, decoded))
        return True

    def private_envelope(self, socket_id: str, text: str) -> bytes:
        bus = self.bus
        meta = bus.meta(self.settings.private_channel)
        return bus.codec.dumps(env.private_one(text, socket_id, self.name, meta))

    async def send_private_confirmed(self, socket_id: str, text: bytes) -> bool:
        """One direct message, waiting for Redis' answer: False when the node holding the
        socket crashed or left (nobody listens on its inbox)."""
        envelope = self.private_envelope(socket_id, text.decode())
        return await self.directory.send_confirmed(socket_id, envelope)

    def send_private_ids(self, socket_ids: list[str], text: bytes) -> None:
        """``to_socket_ids`` for ids that are not local: one envelope per owning node and one
        (d) for the ids whose owner is unknown (:mod:`wsfleet.bus.private_ids`)."""
        if not send_many(self.bus, socket_ids, text.decode()):
            self.send_private(socket_ids, text)

    def claim(self, socket_id: str, since: int) -> None:
        args = {"socketId": socket_id, "since": since}
        notice = self.bus.codec.dumps(
            env.control(ControlAction.DUPLICATE, args, self.name, self.bus.meta())
        )
        self.directory.claim(socket_id, notice)

    def release(self, socket_id: str) -> None:
        self.directory.release(socket_id)

    def namespace_used(self, namespace: str) -> None:
        if self.bus.sharded:
            return  # each room has its own channel (room_used)
        if namespace not in self._ns_subscribed:
            self._ns_subscribed.add(namespace)
            self.bus.subscribe(self.settings.room_channel(namespace))

    async def namespace_confirmed(self, namespace: str, timeout: float | None) -> None:
        """Wait until every Redis node confirmed this node's subscription to the namespace's
        channel (at once when it already did). Raises ``TimeoutError``."""
        listened = self._ns_subscribed
        if namespace not in listened and namespace not in self.settings.preset_room_namespaces:
            return  # not a namespace this node listens to (no local member)
        channel = self.settings.room_channel(namespace)
        raw = (channel.encode(),)
        if all(link.is_subscribed(raw) for link in self.bus.links.values()):
            return
        async with asyncio.timeout(timeout):
            await self.bus.wait_subscribed(channel)

    def namespace_emptied(self, namespace: str) -> None:
        if not self.settings.auto_unsubscribe or namespace not in self._ns_subscribed:
            return
        self._ns_subscribed.discard(namespace)
        self.bus.unsubscribe(self.settings.room_channel(namespace))
