"""Plain counters kept by a node, read by the metrics exporter and by tests.

Incrementing an int attribute is the cheapest thing the hot path can do; labels stay bounded
because every dict here is keyed by a small closed set (close codes, malformed-frame reasons).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from wsfleet.latency import EventHistograms, LatencyHistogram


@dataclass(slots=True)
class NodeStats:
    connections_accepted: int = 0
    connections_refused: Counter[str] = field(default_factory=Counter)
    connections_closed: Counter[int] = field(default_factory=Counter)
    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    heartbeats: int = 0
    events_handled: int = 0
    acks_sent: int = 0
    handler_errors: int = 0
    unknown_events: int = 0
    malformed_frames: Counter[str] = field(default_factory=Counter)
    bad_callback_ids: int = 0
    slow_consumer_disconnects: int = 0
    rate_limited: int = 0
    auth_timeouts: int = 0
    duplicate_logins: int = 0
    stale_duplicate_notices: int = 0
    dead_sockets_reaped: int = 0
    background_sockets_reaped: int = 0
    broadcasts: int = 0
    handler_seconds: EventHistograms = field(default_factory=EventHistograms)
    handler_errors_by_event: Counter[str] = field(default_factory=Counter)
    ack_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)
    drained_connections: int = 0
