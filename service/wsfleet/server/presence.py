"""Cluster-wide presence: join and leave events of rooms in the opted-in namespaces
(``ServerSettings.presence_namespaces``), on every node of the fleet.

The node where a socket joins or leaves a room delivers the event locally and publishes it on
``<bridge>wsfleet:presence`` (routed like the room's messages, so one room's events keep their
order); every node hands what it receives to its ``on_presence`` handlers (a bounded queue:
:mod:`wsfleet.server.presence_queue`) and, with ``presence_clients``, to its local members of
the room as a normal ``wsf:presence`` event frame.

After a crash: each node also keeps its memberships in a Redis set
(``<bridge>wsfleet:presence:<node>``, entries ``<namespace>\\0<room>\\0<socket id>``). When a node
leaves the fleet (goodbye, or its lease expired), every survivor tries to take that set in one
script; the one that gets it publishes a ``node-lost`` leave for each entry, so the leaves come
once, within one lease period. A node that starts takes over the set its previous instance under
the same name left behind.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from wsfleet import contract
from wsfleet.bus import envelopes as env
from wsfleet.bus.codec import BusDecodeError
from wsfleet.protocol.codec import encode_event
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.fleet import Fleet
from wsfleet.server.hub import Hub
from wsfleet.server.presence_queue import PresenceEvent, PresenceKind, PresenceQueue
from wsfleet.server.settings import ServerSettings

log = logging.getLogger("wsfleet.presence")

EVENT: Final = "wsf:presence"
ACTION: Final = "presence"
_SEP: Final = "\x00"

_TAKE = """
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return members
"""


class Presence:
    """The Hub's presence hooks and the fleet's presence channel, on one node."""

    def __init__(self, hub: Hub, fleet: Fleet, settings: ServerSettings) -> None:
        self.hub, self.fleet = hub, fleet
        self.namespaces = frozenset(settings.presence_namespaces)
        self.to_clients = settings.presence_clients
        self.node = fleet.name
        self.queue = PresenceQueue(settings.presence_queue_max_bytes, fleet.tasks)
        self.published = 0
        self.received = 0
        self.lost_leaves = 0
        space = fleet.settings.bridge_space
        self.channel = contract.key(space, "presence")
        self._set_prefix = contract.key(space, "presence", "")
        self._ttl_ms = int(fleet.settings.lease_ttl * 4000)
        fleet.bus.keep_subscribed(self.channel)
        fleet.inbound.add_route(self.channel, self.on_bus_message)
        fleet.registry.on_left.append(self.node_left)
        fleet.started.append(self.started)

    def handles(self, namespace: str) -> bool:
        return namespace in self.namespaces

    # -- what the Hub tells ----------------------------------------------------------------------

    def joined(self, namespace: str, room_id: str, socket_id: str) -> None:
        self._local("join", namespace, room_id, socket_id, "joined")

    def left(self, namespace: str, room_id: str, socket_id: str) -> None:
        self._local("leave", namespace, room_id, socket_id, "left")

    def _local(
        self, kind: PresenceKind, namespace: str, room_id: str, socket_id: str, reason: str
    ) -> None:
        event = PresenceEvent(kind, namespace, room_id, socket_id, self.node, reason)
        self.deliver(event)
        fleet = self.fleet
        entry = _SEP.join((namespace, room_id, socket_id))
        key = self._set_prefix + self.node
        if kind == "join":
            fleet.bus.execute(("SADD", key, entry), key, want_result=False)
            fleet.bus.execute(("PEXPIRE", key, self._ttl_ms), key, want_result=False)
        else:
            fleet.bus.execute(("SREM", key, entry), key, want_result=False)
        self._publish(event)

    def _publish(self, event: PresenceEvent) -> None:
        bus = self.fleet.bus
        args = {
            "t": event.kind,
            "ns": event.namespace,
            "room": event.room_id,
            "id": event.socket_id,
            "node": event.node,
            "r": event.reason,
        }
        message = env.control(ACTION, args, self.fleet.name, bus.meta())
        bus.publish(self.channel, message, f"room:{event.namespace}:{event.room_id}")
        self.published += 1

    # -- delivery on this node -------------------------------------------------------------------

    def deliver(self, event: PresenceEvent) -> None:
        self.queue.put(event)
        if self.to_clients:
            payload = {
                "type": event.kind,
                "namespace": event.namespace,
                "room": event.room_id,
                "socketId": event.socket_id,
                "node": event.node,
                "reason": event.reason,
            }
            frame = build_text_frame(encode_event(EVENT, payload))
            self.hub.deliver_room(event.namespace, event.room_id, frame, ())

    def on_bus_message(self, message: dict[str, Any]) -> None:
        control = env.parse_control(message)
        if control.action != ACTION:
            return
        event = _parse(control.args)
        if event is None:
            raise BusDecodeError("malformed presence event")
        if event.namespace in self.namespaces:
            self.received += 1
            self.deliver(event)

    # -- nodes that went away --------------------------------------------------------------------

    async def started(self) -> None:
        """The node joined the fleet: take over what a previous instance under the same name
        left (before any socket of this one joins), then keep its set alive."""
        await self._take(self.node)
        self.fleet.loops.spawn(self._refresh(), "wsfleet-presence-set")

    def node_left(self, name: str) -> None:
        self.fleet.tasks.spawn(self._take(name), "wsfleet-presence-node-left")

    async def _take(self, name: str) -> None:
        key = self._set_prefix + name
        future = self.fleet.bus.execute(("EVAL", _TAKE, 1, key), key)
        assert future is not None
        try:
            async with asyncio.timeout(self.fleet.settings.command_timeout * 2):
                members = await future
        except Exception as exc:
            log.warning("the memberships of node %s could not be read: %r", name, exc)
            return
        if not isinstance(members, list | tuple):
            return
        for raw in members:
            parts = raw.decode("utf-8", "replace").split(_SEP) if isinstance(raw, bytes) else ()
            if len(parts) != 3 or parts[0] not in self.namespaces:
                continue
            event = PresenceEvent("leave", parts[0], parts[1], parts[2], name, "node-lost")
            self.lost_leaves += 1
            self.deliver(event)
            self._publish(event)
        if members:
            log.info("node %s left: %d presence leaves sent for it", name, len(members))

    async def _refresh(self) -> None:
        key = self._set_prefix + self.node
        while True:
            await asyncio.sleep(self.fleet.settings.lease_refresh)
            self.fleet.bus.execute(("PEXPIRE", key, self._ttl_ms), key, want_result=False)


def _parse(args: dict[str, Any]) -> PresenceEvent | None:
    kind, reason = args.get("t"), args.get("r")
    names = [args.get(k) for k in ("ns", "room", "id", "node")]
    if kind not in ("join", "leave") or not isinstance(reason, str):
        return None
    if not all(isinstance(n, str) and n for n in names) or len(reason) > 32:
        return None
    ns, room, socket_id, node = (str(n) for n in names)
    return PresenceEvent("join" if kind == "join" else "leave", ns, room, socket_id, node, reason)
