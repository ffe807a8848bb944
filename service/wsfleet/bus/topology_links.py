"""The link of a ``redis+cluster://`` or ``redis+sentinel://`` address (see
:mod:`wsfleet.bus.topology_nodes`)."""

from __future__ import annotations

from wsfleet.bus.broker import BrokerEventHandler, BrokerLink, LinkTimings
from wsfleet.bus.nodes import RedisNode


def topology_link(node: RedisNode, handler: BrokerEventHandler, timings: LinkTimings) -> BrokerLink:
    if node.mode == "cluster":
        from wsfleet.bus.cluster_link import ClusterLink

        return ClusterLink(node, handler, timings=timings)
    if node.mode == "sentinel":
        from wsfleet.bus.sentinel import SentinelLink

        return SentinelLink(node, handler, timings=timings)
    raise ValueError(f"unknown Redis mode {node.mode!r}")
