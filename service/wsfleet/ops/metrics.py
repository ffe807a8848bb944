"""Prometheus metrics of a node, read from its plain counters at scrape time.

The hot paths only increment ints and fill :class:`~wsfleet.latency.LatencyHistogram`s; this
collector turns them into metric families when ``/metrics`` is scraped, so serving traffic never
takes a prometheus-client lock. Every metric is documented in docs/operations.md; labels are
bounded (close codes, kinds, registered event names, Redis node keys), never socket or room ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from wsfleet.latency import OTHER_EVENT, LatencyHistogram
from wsfleet.server.server import Server
from wsfleet.version import __version__

PREFIX = "wsfleet_"
_CHANNEL = "channel"


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


REJECT_REASONS = (
    "unsigned",
    "malformed",
    "unknown-key",
    "bad-signature",
    "stale",
    "replay",
    "address",
)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _histogram(
    family: HistogramMetricFamily, labels: list[str], hist: LatencyHistogram
) -> HistogramMetricFamily:
    family.add_metric(labels, hist.cumulative(), hist.sum)
    return family


class NodeCollector(Collector):
    """Everything a node exports; one per :class:`Server`, in its own registry."""

    def __init__(self, server: Server, room_namespaces: Iterable[str] = ()) -> None:
        self.server = server
        self.room_namespaces = tuple(room_namespaces)

    def collect(self) -> Iterator[Metric]:
        yield from self._node()
        yield from self._traffic()
        yield from self._handlers()
        yield from self._rooms()
        if self.server.fleet is not None:
            yield from self._bus()
            yield from self._rpc()

    def _node(self) -> Iterator[Metric]:
        server = self.server
        info = GaugeMetricFamily(
            PREFIX + "build_info", "wsfleet version of this node", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        yield _gauge("ready", "1 when the node is ready (see /readyz)", int(server.is_ready))
        yield _gauge("draining", "1 while the node drains", int(server.is_draining))
        yield _gauge("connections", "open WebSocket connections", server.connection_count)
        yield _gauge("sockets", "connections registered under a socket id", server.socket_count)

    def _traffic(self) -> Iterator[Metric]:
        s = self.server.stats
        yield _counter(
            "connections_accepted", "WebSocket upgrades accepted", s.connections_accepted
        )
        refused = CounterMetricFamily(
            PREFIX + "connections_refused",
            "upgrades refused, by HTTP status of the refusal",
            labels=["reason"],
        )
        for reason, n in sorted(s.connections_refused.items()):
            refused.add_metric([reason], n)
        yield refused
        closed = CounterMetricFamily(
            PREFIX + "connections_closed", "connections closed, by close code", labels=["code"]
        )
        for code, n in sorted(s.connections_closed.items()):
            closed.add_metric([str(int(code))], n)
        yield closed
        received = CounterMetricFamily(
            PREFIX + "messages_received", "data frames received, by kind", labels=["kind"]
        )
        malformed = sum(s.malformed_frames.values())
        received.add_metric(["event"], s.events_handled)
        received.add_metric(["unknown_event"], s.unknown_events)
        received.add_metric(["heartbeat"], s.heartbeats)
        received.add_metric(["malformed"], malformed)
        received.add_metric(["rate_limited"], s.rate_limited)
        yield received
        sent = CounterMetricFamily(
            PREFIX + "messages_sent", "frames written to clients, by kind", labels=["kind"]
        )
        sent.add_metric(["ack"], s.acks_sent)
        sent.add_metric(["other"], max(s.frames_out - s.acks_sent, 0))
        yield sent
        yield _counter("received_bytes", "bytes of data frames received", s.bytes_in)
        yield _counter("sent_bytes", "bytes of frames written to clients", s.bytes_out)
        yield _counter("broadcasts", "broadcasts started on this node", s.broadcasts)
        yield _counter(
            "slow_consumer_disconnects",
            "clients closed with 4003 because their send buffer overflowed",
            s.slow_consumer_disconnects,
        )
        yield _counter("rate_limited", "inbound frames over the rate limit", s.rate_limited)
        yield _counter("auth_timeouts", "connections closed with 4005", s.auth_timeouts)
        yield _counter("duplicate_logins", "sockets replaced by a later login", s.duplicate_logins)
        yield _counter(
            "dead_connections_reaped",
            "connections dropped by the ping loop (no answer or background)",
            s.dead_sockets_reaped + s.background_sockets_reaped,
        )
        yield _counter(
            "drained_connections", "connections closed by a drain", s.drained_connections
        )

    def _handlers(self) -> Iterator[Metric]:
        s = self.server.stats
        duration = HistogramMetricFamily(
            PREFIX + "handler_duration_seconds",
            f"time in event handlers, by event (unregistered or past the label limit: "
            f"{OTHER_EVENT!r})",
            labels=["event"],
        )
        for event, hist in sorted(s.handler_seconds.items()):
            _histogram(duration, [event], hist)
        yield duration
        errors = CounterMetricFamily(
            PREFIX + "handler_errors", "event handlers that raised, by event", labels=["event"]
        )
        for event, n in sorted(s.handler_errors_by_event.items()):
            errors.add_metric([event], n)
        yield errors
        ack = HistogramMetricFamily(
            PREFIX + "ack_duration_seconds", "from receiving an event to sending its ack"
        )
        yield _histogram(ack, [], s.ack_seconds)

    def _rooms(self) -> Iterator[Metric]:
        hub = self.server.hub
        yield _gauge("rooms", "rooms with at least one member on this node", hub.total_rooms())
        yield _gauge("room_members", "room memberships on this node", hub.total_members())
        if not self.room_namespaces:
            return
        by_ns = GaugeMetricFamily(
            PREFIX + "namespace_rooms", "rooms per configured namespace", labels=["namespace"]
        )
        members = GaugeMetricFamily(
            PREFIX + "namespace_room_members",
            "room memberships per configured namespace",
            labels=["namespace"],
        )
        for ns in self.room_namespaces:
            by_ns.add_metric([ns], hub.room_count(ns))
            members.add_metric([ns], hub.namespace_members(ns))
        yield by_ns
        yield members

    def _bus(self) -> Iterator[Metric]:
        fleet = self.server.fleet
        assert fleet is not None
        bus = fleet.bus
        b = bus.stats
        yield _gauge("cluster_nodes", "live nodes in the fleet registry", len(fleet.registry.live))
        published = CounterMetricFamily(
            PREFIX + "bus_published",
            "messages published on the bus, by channel kind",
            labels=[_CHANNEL],
        )
        for name, n in sorted(b.published_by_kind.items()):
            published.add_metric([name], n)
        yield published
        received = CounterMetricFamily(
            PREFIX + "bus_received",
            "messages received from the bus, by channel kind",
            labels=[_CHANNEL],
        )
        for name, n in sorted(b.received_by_kind.items()):
            received.add_metric([name], n)
        yield received
        yield _counter(
            "bus_publish_retries", "publishes retried on another Redis node", b.publish_retries
        )
        yield _counter(
            "bus_publish_failures",
            "publishes that failed for good (the caller got an error)",
            b.publish_failures,
        )
        yield _counter("bus_decode_errors", "bus messages that were not valid", b.decode_errors)
        yield _counter(
            "bus_duplicates_dropped", "bus messages dropped as duplicates", b.duplicates_dropped
        )
        rejected = CounterMetricFamily(
            PREFIX + "bus_rejected",
            "bus messages refused (unsigned, bad signature, unknown key, replay, address, ...)",
            labels=["reason"],
        )
        for reason in sorted(set(REJECT_REASONS) | set(b.rejected)):
            rejected.add_metric([reason], b.rejected[reason])
        yield rejected
        auth = GaugeMetricFamily(
            PREFIX + "bus_auth_mode",
            "1 for the bus authentication mode in use (off, signed, compat)",
            labels=["mode"],
        )
        auth.add_metric([bus.auth.mode.value], 1)
        yield auth
        yield _counter(
            "bus_unsigned_accepted",
            "unsigned messages accepted in compatibility mode (from original nodes)",
            bus.auth.unsigned_accepted,
        )
        yield _gauge(
            "bus_outage_buffer_messages",
            "publishes waiting for a usable Redis node",
            len(bus.outage),
        )
        yield _gauge(
            "bus_outage_buffer_bytes",
            "bytes of publishes waiting for a usable Redis node",
            bus.outage.bytes,
        )
        yield _counter(
            "bus_calls_busy",
            "cross-server requests answered busy (max_incoming_calls listeners ran already)",
            fleet.cross.incoming.busy,
        )
        yield _counter(
            "bus_hotplug_refused",
            "Redis node list changes refused because they would leave no Redis node",
            fleet.control.node_target.refused,
        )
        yield _counter(
            "bus_outage_dropped",
            "publishes refused (buffer full) or expired in the outage buffer",
            b.outage_refused + b.outage_expired,
        )
        yield _counter(
            "bus_probes_failed", "end-to-end probes that did not return", b.probes_failed
        )
        yield _counter(
            "bus_deaf_repairs", "subscriptions rebuilt after a lost probe", b.deaf_repairs
        )
        up = GaugeMetricFamily(
            PREFIX + "redis_node_up",
            "1 when both connections to the Redis node are healthy",
            labels=["redis"],
        )
        latency = GaugeMetricFamily(
            PREFIX + "redis_latency_seconds",
            "last PING round trip to the Redis node",
            labels=["redis"],
        )
        reconnects = CounterMetricFamily(
            PREFIX + "redis_reconnects", "reconnections to the Redis node", labels=["redis"]
        )
        probe_ok = GaugeMetricFamily(
            PREFIX + "bus_probe_ok",
            "1 when the last end-to-end probe through the Redis node returned in time",
            labels=["redis"],
        )
        probe_rtt = GaugeMetricFamily(
            PREFIX + "bus_probe_rtt_seconds",
            "round trip of the last end-to-end probe through the Redis node",
            labels=["redis"],
        )
        working = set(bus.working_paths())
        for key, link in sorted(bus.links.items()):
            up.add_metric([key], int(link.publisher_healthy and link.subscriber_healthy))
            latency.add_metric([key], link.latency)
            reconnects.add_metric([key], link.health.reconnects + link.publisher_connects)
            probe_ok.add_metric([key], int(key in working))
            probe_rtt.add_metric([key], b.probe_rtt.get(key, 0.0))
        yield from (up, latency, reconnects, probe_ok, probe_rtt)

    def _rpc(self) -> Iterator[Metric]:
        fleet = self.server.fleet
        assert fleet is not None
        calls = fleet.calls
        yield _gauge("rpc_pending_calls", "cross-server calls waiting for replies", len(calls))
        outcomes = CounterMetricFamily(
            PREFIX + "rpc_calls", "finished cross-server calls, by outcome", labels=["outcome"]
        )
        outcomes.add_metric(["complete"], calls.completed - calls.timed_out - calls.failed)
        outcomes.add_metric(["timeout"], calls.timed_out)
        outcomes.add_metric(["failed"], calls.failed)
        yield outcomes
        duration = HistogramMetricFamily(
            PREFIX + "rpc_duration_seconds",
            "from sending a cross-server call to its result, by mode",
            labels=["mode"],
        )
        for mode, hist in sorted(calls.durations.items()):
            _histogram(duration, [mode], hist)
        yield duration


def node_registry(server: Server, room_namespaces: Iterable[str] = ()) -> CollectorRegistry:
    """A registry with the node's metrics and the usual process_/python_ ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(server, room_namespaces))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
