"""``Server``: a wsfleet node's WebSocket side - events with acks, sockets, rooms, broadcasts.

The class is assembled from layers, each in its own module and each building on the one before:
``core`` (event tables, socket registry, rooms, sending), ``inbound`` (what the aiohttp adapter in
``transport`` calls: admit, open, frames, dispatch, close), ``lifecycle`` (start, drain, close,
ping loop) and ``fleet_api`` (cross-server calls and cluster queries). Client events and system
events live in separate tables, so a client frame ``{"event": "close"}`` can never run a
``close`` handler (W11 of the original).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wsfleet.bus.settings import FleetSettings
from wsfleet.listeners import ListenerTable
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.core import (
    Authenticator,
    DuplicateSocketError,
    EventHandler,
    Refuse,
    SystemHandler,
    UnknownSocketError,
)
from wsfleet.server.fleet import Fleet
from wsfleet.server.fleet_api import FleetAPI
from wsfleet.server.lifecycle import Lifecycle
from wsfleet.server.rooms import RoomIndex
from wsfleet.server.settings import ServerSettings
from wsfleet.server.socket import Socket
from wsfleet.server.stats import NodeStats

if TYPE_CHECKING:
    from wsfleet.tracing import Tracing


__all__ = [
    "Authenticator",
    "DuplicateSocketError",
    "EventHandler",
    "Refuse",
    "Server",
    "UnknownSocketError",
]


class Server(FleetAPI, Lifecycle):
    """A wsfleet node. Run it on its own port (``await start()``/``run()``), mount it on an
    aiohttp application (``attach()``), or call ``handle(request)`` from your own route.

    :param authenticate: optional hook called with the :class:`UpgradeRequest` **before** the
        upgrade. Return a socket id to accept and register the socket under it, ``None`` to accept
        it unregistered, or raise :class:`Refuse` to answer with an HTTP error status instead.
    """

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        fleet: FleetSettings | None = None,
        authenticate: Authenticator | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.stats = NodeStats()
        self._authenticate = authenticate
        self._events: ListenerTable[EventHandler] = ListenerTable()
        self._system: ListenerTable[SystemHandler] = ListenerTable()
        self._connections: set[Socket] = set()
        self._sockets: dict[str, Socket] = {}
        self._rooms = RoomIndex()
        hb = self.settings.heartbeat
        self._heartbeat = hb
        self._heartbeat_frame = build_text_frame(hb.encode())
        self._ping_task: asyncio.Task[None] | None = None
        self._runner: Any = None
        self._ports: list[int] = []
        self._accepting = True
        self._started = False
        self._draining = False
        self._closed_once = False
        self.fleet: Fleet | None = Fleet(self, fleet) if fleet is not None else None
        self._fleet_started = False
        self._all_gone: asyncio.Event | None = None
        self.tracing: Tracing | None = None
