"""The metric names of the wsfleet operational contract (all on :9100/metrics), by type.

Dashboards and alerts may use these names only; histograms through their _bucket/_sum/_count series.
"""

from __future__ import annotations

GAUGES = frozenset(
    {
        "wsfleet_connections",
        "wsfleet_ready",
        "wsfleet_draining",
        "wsfleet_cluster_nodes",
        "wsfleet_rooms",
        "wsfleet_room_members",
        "wsfleet_redis_node_up",
        "wsfleet_redis_latency_seconds",
        "wsfleet_bus_probe_ok",
        "wsfleet_bus_probe_rtt_seconds",
        "wsfleet_bus_outage_buffer_messages",
        "wsfleet_rpc_pending_calls",
        "wsfleet_build_info",
    }
)
COUNTERS = frozenset(
    {
        "wsfleet_connections_accepted_total",
        "wsfleet_connections_refused_total",
        "wsfleet_connections_closed_total",
        "wsfleet_messages_received_total",
        "wsfleet_messages_sent_total",
        "wsfleet_received_bytes_total",
        "wsfleet_sent_bytes_total",
        "wsfleet_handler_errors_total",
        "wsfleet_slow_consumer_disconnects_total",
        "wsfleet_rate_limited_total",
        "wsfleet_bus_published_total",
        "wsfleet_bus_received_total",
        "wsfleet_bus_publish_retries_total",
        "wsfleet_bus_publish_failures_total",
        "wsfleet_bus_outage_dropped_total",
        "wsfleet_bus_duplicates_dropped_total",
        "wsfleet_redis_reconnects_total",
        "wsfleet_rpc_calls_total",
    }
)
HISTOGRAMS = frozenset({"wsfleet_handler_duration_seconds", "wsfleet_rpc_duration_seconds"})
ALL = GAUGES | COUNTERS | HISTOGRAMS

# The labels each metric carries besides the scrape's own (namespace, pod, job, ...).
LABELS: dict[str, frozenset[str]] = {
    "wsfleet_redis_node_up": frozenset({"redis"}),
    "wsfleet_redis_latency_seconds": frozenset({"redis"}),
    "wsfleet_bus_probe_ok": frozenset({"redis"}),
    "wsfleet_bus_probe_rtt_seconds": frozenset({"redis"}),
    "wsfleet_build_info": frozenset({"version"}),
    "wsfleet_connections_refused_total": frozenset({"reason"}),
    "wsfleet_connections_closed_total": frozenset({"code"}),
    "wsfleet_messages_received_total": frozenset({"kind"}),
    "wsfleet_messages_sent_total": frozenset({"kind"}),
    "wsfleet_handler_errors_total": frozenset({"event"}),
    "wsfleet_bus_published_total": frozenset({"channel"}),
    "wsfleet_bus_received_total": frozenset({"channel"}),
    "wsfleet_redis_reconnects_total": frozenset({"redis"}),
    "wsfleet_rpc_calls_total": frozenset({"outcome"}),
    "wsfleet_handler_duration_seconds": frozenset({"event"}),
    "wsfleet_rpc_duration_seconds": frozenset({"mode"}),
}


# Series the alerts read besides the nodes': the operator's own /metrics (scraped by the operator
# PodMonitor with honorLabels, so `namespace` is the fleet's) and two standard ones, Prometheus'
# `up` and kube-state-metrics' container waiting reason.
OPERATOR_GAUGES = frozenset({"wsfleet_operator_fleet_condition", "wsfleet_operator_fleets"})
OPERATOR_COUNTERS = frozenset(
    {
        "wsfleet_operator_reconciles_total",
        "wsfleet_operator_control_messages_total",
        "wsfleet_operator_status_writes_total",
    }
)
STANDARD_GAUGES = frozenset({"up", "kube_pod_container_status_waiting_reason"})
ALERT_GAUGES = GAUGES | OPERATOR_GAUGES | STANDARD_GAUGES
ALERT_COUNTERS = COUNTERS | OPERATOR_COUNTERS
LABELS |= {
    "wsfleet_operator_fleet_condition": frozenset({"wsfleet", "type", "status"}),
    "wsfleet_operator_reconciles_total": frozenset({"outcome"}),
    "wsfleet_operator_control_messages_total": frozenset({"outcome"}),
    "kube_pod_container_status_waiting_reason": frozenset({"reason", "container"}),
}


def base_name(series: str) -> str | None:
    """The metric a series name belongs to, or None when it is not one the chart may use."""
    if series in ALERT_GAUGES or series in ALERT_COUNTERS:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series.removesuffix(suffix) in HISTOGRAMS:
            return series.removesuffix(suffix)
    return None
