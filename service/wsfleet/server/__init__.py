"""The wsfleet node: ``Server`` and what its handlers receive."""

from wsfleet.server.presence_queue import PresenceEvent
from wsfleet.server.room_history import HistoryEntry, HistoryLostError, RoomHistory
from wsfleet.server.server import (
    Authenticator,
    DuplicateSocketError,
    EventHandler,
    Refuse,
    Server,
    UnknownSocketError,
)
from wsfleet.server.settings import DuplicatePolicy, RateLimitPolicy, ServerSettings
from wsfleet.server.socket import Acknowledge, Socket, UpgradeRequest
from wsfleet.server.stats import NodeStats
from wsfleet.server.system_events import SystemEvent

__all__ = [
    "Acknowledge",
    "Authenticator",
    "DuplicatePolicy",
    "DuplicateSocketError",
    "EventHandler",
    "HistoryEntry",
    "HistoryLostError",
    "NodeStats",
    "PresenceEvent",
    "RateLimitPolicy",
    "Refuse",
    "RoomHistory",
    "Server",
    "ServerSettings",
    "Socket",
    "SystemEvent",
    "UnknownSocketError",
    "UpgradeRequest",
]
