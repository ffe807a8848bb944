"""The bus's counters and its one error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wsfleet.bus.broker import BrokerLink
from wsfleet.protocol.errors import WsfleetError


class BusUnavailableError(WsfleetError):
    """A publish could not be delivered to any Redis node (buffer full, too old, or no node)."""


@dataclass(slots=True)
class BusStats:
    published: int = 0
    #: Per channel kind (``FleetSettings.channel_kind``): a fixed set of keys, never a name.
    published_by_kind: Counter[str] = field(default_factory=Counter)
    received_by_kind: Counter[str] = field(default_factory=Counter)
    duplicates_dropped: int = 0
    publish_retries: int = 0
    publish_failures: int = 0
    received: int = 0
    decode_errors: int = 0
    self_echo_dropped: int = 0
    probes_sent: int = 0
    probes_failed: int = 0
    deaf_repairs: int = 0
    probe_rtt: dict[str, float] = field(default_factory=dict)
    outage_refused: int = 0
    outage_expired: int = 0
    #: Messages refused by reason (signature, address, replay, ...): ``wsfleet_bus_rejected``.
    rejected: Counter[str] = field(default_factory=Counter)


def health_info(
    server_name: str,
    link: BrokerLink,
    role: str,
    healthy: bool,
    event: str,
    error: str | None,
    links: Iterable[BrokerLink],
) -> dict[str, Any]:
    """What health listeners get (the original's ``onRedisHealthChange`` payload)."""
    every = list(links)
    return {
        "host": link.node.host,
        "port": link.node.port,
        "serverName": server_name,
        "event": event,
        "isHealthy": healthy,
        "error": error,
        "healthySubscriberCount": sum(1 for lk in every if lk.subscriber_healthy),
        "healthyPublisherCount": sum(1 for lk in every if lk.publisher_healthy),
        "totalNodeCount": len(every),
        "type": role,
    }
