"""Control actions of a fleet (``redis.add``, ``redis.set``, ``redis.remove``, duplicate logins,
goodbyes) and the Redis node list: hot-plugging Redis nodes on this node. Redis node changes only
set the target list of :class:`~wsfleet.bus.node_target.NodeTarget`, which applies the last one
received, one step at a time, in a task the bus owns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus
from wsfleet.bus.node_target import NodeTarget
from wsfleet.bus.nodelist import read_node_list
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.registry import Registry
from wsfleet.bus.settings import FleetSettings
from wsfleet.bus.trust import BusAddressError, Credentials, public_address, trusted_nodes
from wsfleet.contract import ControlAction
from wsfleet.server.hub import Hub
from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.fleet")

_REDIS_ACTIONS: Final = (
    ControlAction.REDIS_ADD,
    ControlAction.REDIS_SET,
    ControlAction.REDIS_REMOVE,
)


class FleetControl:
    def __init__(
        self, bus: Bus, registry: Registry, hub: Hub, settings: FleetSettings, tasks: TaskOwner
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.hub = hub
        self.settings = settings
        self.name = settings.server_name
        self.tasks = tasks
        self.listed: tuple[RedisNode, ...] | None = None
        #: Credentials for nodes named on the bus come only from this node's own configuration.
        self.credentials = Credentials(
            lambda: (*self.bus.configured, *(self.listed or ())),
            password_file=settings.redis_password_file,
            secrets_dir=settings.redis_secrets_dir,
            username=settings.redis_username,
        )
        self.node_target = NodeTarget(bus, self.add_redis_node)

    def on_control(self, message: dict[str, Any]) -> None:
        control = env.parse_control(message)
        action, args = control.action, control.args
        if action == ControlAction.DUPLICATE:
            socket_id = args.get("socketId")
            if isinstance(socket_id, str):
                self.hub.logged_in_elsewhere(socket_id, args.get("since"))
        elif action == ControlAction.NODE_LEFT:
            self.registry.node_left(control.sender, args.get("boot"))
        elif action in _REDIS_ACTIONS:
            try:
                nodes = trusted_nodes(action, args, self.credentials)
            except BusAddressError as exc:
                self.bus.stats.rejected["address"] += 1
                log.warning("refused %s from %s: %s", action, control.sender, exc)
                return
            if action == ControlAction.REDIS_ADD:
                self.node_target.add(nodes[0], control.sender)
            elif action == ControlAction.REDIS_SET:
                self.node_target.set(nodes, control.sender)
            else:
                self.node_target.remove(nodes[0].key, control.sender)
        else:
            log.debug("unknown control action %r from %s", action, control.sender)

    def announce(self, action: str, address: str) -> None:
        message = env.control(action, {"address": address}, self.name, self.bus.meta())
        self.bus.publish(self.settings.control_channel, message, "*control")

    # -- hot-plug ---

    async def add_instance(self, address: str | RedisNode, *, everywhere: bool) -> bool:
        node = address if isinstance(address, RedisNode) else RedisNode.parse(address)
        if everywhere:
            self.announce(ControlAction.REDIS_ADD, public_address(node))
        return await self.add_redis_node(node)

    async def remove_instance(self, address: str | RedisNode, *, everywhere: bool) -> bool:
        node = address if isinstance(address, RedisNode) else RedisNode.parse(address)
        if everywhere:
            self.announce(ControlAction.REDIS_REMOVE, public_address(node))
        return await self.bus.remove_redis_node(node.key)

    def healthy_count(self, role: str) -> int:
        if role not in ("publisher", "subscriber"):
            raise TypeError("role must be 'publisher' or 'subscriber'")
        links = self.bus.links.values()
        if role == "publisher":
            return sum(1 for link in links if link.publisher_healthy)
        return sum(1 for link in links if link.subscriber_healthy)

    async def add_redis_node(self, node: RedisNode) -> bool:
        def fleet_listens(key: str) -> bool:
            live = self.registry.live
            return all(
                key in (info.get("redis") or ()) for name, info in live.items() if name != self.name
            )

        added = await self.bus.add_redis_node(node, ready=fleet_listens)
        await self.registry.refresh()
        return added

    async def apply_node_list(self, nodes: Iterable[RedisNode]) -> None:
        """Make the bus use exactly ``nodes`` (the last list wins; a node whose credentials or
        TLS changed is reconnected) and wait until it was applied (removed nodes may still
        drain). An empty list is refused."""
        if self.node_target.set(nodes, "the node list"):
            await self.node_target.settled()

    def read_listed(self, directory: Path) -> None:
        """Read the mounted node list once at start: its nodes join the configured ones."""
        self.listed = read_node_list(directory)
        configured = {n.key for n in self.bus.configured}
        for node in self.listed or ():
            if node.key not in configured:
                configured.add(node.key)
                self.bus.configured.append(node)

    async def watch_config_dir(self, directory: Path) -> None:
        while True:
            await asyncio.sleep(self.settings.config_poll_interval)
            try:
                listed = read_node_list(directory)
            except (OSError, ValueError) as exc:
                log.warning("cannot read the Redis node list in %s: %s", directory, exc)
                continue
            # Applied when the file changes, so nodes added by a control message stay until the
            # next edit of the list.
            if listed is None or listed == self.listed:
                continue
            self.listed = listed
            try:
                await self.apply_node_list(listed)
            except Exception:
                log.exception("applying the Redis node list of %s failed", directory)
