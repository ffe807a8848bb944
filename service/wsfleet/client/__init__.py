"""wsfleet's Python client: :class:`Connector`, the twin of the original ``WebSocketConnector``.

It speaks the original wire protocol (JSON text frames, the ``""`` heartbeat), so it works
against a wsfleet server and against an original Node.js server alike::

    from wsfleet.client import Connector

    async with Connector("ws://localhost:8080/ws", custom_params={"token": "…"}) as client:
        await client.wait_open(timeout=5)
        reply = await client.emit_with_ack("echo", {"hello": "world"})

Only the names below are public. See ``docs/client-python.md``.
"""

from wsfleet.client.backoff import ReconnectSchedule, reconnect_delay
from wsfleet.client.clock import Clock, LoopClock, TimerHandle
from wsfleet.client.connector import Connector
from wsfleet.client.errors import (
    AckTimeoutError,
    ConnectionClosedError,
    ConnectorError,
    HandshakeError,
    NotConnectedError,
    ReconnectAbortedError,
    SendQueueFullError,
    TooManyPendingAcksError,
    TransportError,
    UpgradeRefusedError,
)
from wsfleet.client.events import SYSTEM_EVENTS, ReconnectInfo, SystemEventName
from wsfleet.client.results import EmitCallback, EmitError, EmitResult
from wsfleet.client.settings import ConnectorSettings, ReconnectPolicy, build_url, js_string
from wsfleet.client.status import ConnectorState, ConnectorStats
from wsfleet.client.streams import EventStream

__all__ = [
    "SYSTEM_EVENTS",
    "AckTimeoutError",
    "Clock",
    "ConnectionClosedError",
    "Connector",
    "ConnectorError",
    "ConnectorSettings",
    "ConnectorState",
    "ConnectorStats",
    "EmitCallback",
    "EmitError",
    "EmitResult",
    "EventStream",
    "HandshakeError",
    "LoopClock",
    "NotConnectedError",
    "ReconnectAbortedError",
    "ReconnectInfo",
    "ReconnectPolicy",
    "ReconnectSchedule",
    "SendQueueFullError",
    "SystemEventName",
    "TimerHandle",
    "TooManyPendingAcksError",
    "TransportError",
    "UpgradeRefusedError",
    "build_url",
    "js_string",
    "reconnect_delay",
]
