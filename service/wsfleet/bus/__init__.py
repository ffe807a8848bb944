"""The cross-server bus over Redis, wire-compatible with the original framework's nodes."""

from wsfleet.bus.broker import BrokerEventHandler, BrokerLink
from wsfleet.bus.bus import Bus, BusStats, BusUnavailableError
from wsfleet.bus.codec import BusCodec, BusDecodeError, Serialization
from wsfleet.bus.events import BusEventHandler
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.registry import DuplicateNodeError
from wsfleet.bus.routing import Strategy
from wsfleet.bus.rpc import CallMode, CrossServerResult, Outcome, TooManyPendingCallsError
from wsfleet.bus.settings import FleetSettings

__all__ = [
    "BrokerEventHandler",
    "BrokerLink",
    "Bus",
    "BusCodec",
    "BusDecodeError",
    "BusEventHandler",
    "BusStats",
    "BusUnavailableError",
    "CallMode",
    "CrossServerResult",
    "DuplicateNodeError",
    "FleetSettings",
    "Outcome",
    "RedisNode",
    "Serialization",
    "Strategy",
    "TooManyPendingCallsError",
]
