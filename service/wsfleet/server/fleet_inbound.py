"""What the bus hands to the node: :class:`BusInbound` is the fleet's one handler for bus
messages (``on_message(channel, message)``, called by the bus for every valid message).

It routes by channel: broadcasts, room messages and direct messages go to the
:class:`~wsfleet.server.hub.Hub`'s local delivery, bridge messages to the cross-server events,
control messages to the control actions, anything else to the application's custom channel
handler (async ones run as owned tasks).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus, BusStats
from wsfleet.bus.codec import BusDecodeError
from wsfleet.bus.settings import FleetSettings
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.cross import CrossServer
from wsfleet.server.fleet_control import FleetControl
from wsfleet.server.hub import Hub
from wsfleet.server.ports import RecoveryHooks
from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.fleet")

CustomHandler = Callable[[str, dict[str, Any]], Any]
Route = Callable[[dict[str, Any]], None]


class BusInbound:
    """The fleet's :class:`~wsfleet.bus.events.BusEventHandler`: what the bus delivers goes to
    the Hub, cross-server calls or control actions."""

    def __init__(self, hub: Hub, settings: FleetSettings, tasks: TaskOwner) -> None:
        self.hub = hub
        self.settings = settings
        self.tasks = tasks
        self.custom_handler: CustomHandler | None = None
        self.recovery: RecoveryHooks | None = None
        self._bus_stats: BusStats | None = None
        self._routes: dict[str, Route] = {}
        self._extra_routes: dict[str, Route] = {}
        self._cross: CrossServer | None = None
        self._control: FleetControl | None = None

    def bind(self, bus: Bus, cross: CrossServer, control: FleetControl) -> None:
        """Connect the parts built after the bus (they publish through it)."""
        settings = self.settings
        self._cross, self._control = cross, control
        self._bus_stats = bus.stats
        inbox = bus.inbox
        self._routes = {
            settings.bridge_channel: cross.on_bridge,
            settings.private_channel: self._on_private,
            settings.broadcast_channel: self._on_broadcast,
            inbox: self._on_inbox,
            settings.control_channel: control.on_control,
            **self._extra_routes,
        }

    def add_route(self, channel: str, route: Route) -> None:
        """Hand what arrives on ``channel`` (subscribed by the caller) to ``route``."""
        self._extra_routes[channel] = route
        self._routes[channel] = route

    def on_bus_health(self, healthy: bool, info: dict[str, Any]) -> None:
        """Health changes reach the application through ``bus.health_listeners``."""

    def on_bus_message(self, channel: str, message: dict[str, Any]) -> None:
        route = self._routes.get(channel)
        try:
            if route is not None:
                route(message)
            elif channel.startswith(self.settings.ws_space):
                self._on_room(message)
            elif self.custom_handler is not None:
                result = self.custom_handler(channel, message)
                if inspect.isawaitable(result):
                    self.tasks.spawn(result, f"wsfleet-custom-{channel}")
        except BusDecodeError as exc:
            if self._bus_stats is not None:
                self._bus_stats.decode_errors += 1
            log.debug("invalid message on %r: %s", channel, exc)

    def _on_inbox(self, message: dict[str, Any]) -> None:
        if self._cross is None or self._control is None:
            return
        if "action" in message:
            self._control.on_control(message)
        elif isinstance(message.get("data"), dict):
            self._cross.on_bridge(message)
        else:
            self._on_private(message)

    def _on_private(self, message: dict[str, Any]) -> None:
        if self.recovery is not None:
            self.recovery.on_private(message)
            return
        frame, socket_id = message.get("data"), message.get("socketId")
        if type(frame) is str and type(socket_id) is str and not message.get("socketIds"):
            # One socket: the frame is built once and written straight to its transport.
            self.hub.deliver_one(socket_id, build_text_frame(frame.encode()))
            return
        parsed = env.parse_private(message)  # several ids, or invalid (raises)
        self.hub.deliver_ids(parsed.socket_ids, build_text_frame(parsed.frame.encode()))

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        if self.recovery is not None:
            self.recovery.on_broadcast(message)
            return
        parsed = env.parse_broadcast(message)
        self.hub.deliver_all(build_text_frame(parsed.frame.encode()))

    def _on_room(self, message: dict[str, Any]) -> None:
        if self.recovery is not None:
            self.recovery.on_room(message)
            return
        parsed = env.parse_room(message)
        self.hub.deliver_room(
            parsed.namespace,
            parsed.room_id,
            build_text_frame(parsed.frame.encode()),
            parsed.exclude,
        )
