"""The live fleet view of the internal port: ``GET /`` (one static page) and ``GET /fleet.json``.

Each node answers the reserved cross-server event ``__wsfleet.view`` with a summary of itself
(health, load, traffic counters, RPC outcomes, its Redis links and the changes it saw lately).
The node that serves the page asks every live node at once, adds its own summary and returns the
lot; the page polls it and turns counter deltas into rates and charts. Read-only: nothing here
changes the fleet.

A :class:`Timeline` samples this node's own state once a second (no bus traffic) and keeps the
last changes it saw: drains, Redis nodes hot-added or removed, nodes joining or leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from wsfleet.bus.rpc import CallMode, CrossServerResult
from wsfleet.version import __version__

if TYPE_CHECKING:
    from wsfleet.server.server import Server

VIEW_EVENT: Final = "__wsfleet.view"
PAGE: Final = Path(__file__).with_name("static") / "fleet.html"
EVENTS_KEPT: Final = 50
"""Changes a node remembers (a bounded deque: the oldest go first)."""
EVENTS_SENT: Final = 20
SAMPLE_INTERVAL: Final = 0.25
"""Seconds between samples of this node's own state (a few attribute reads, no I/O)."""
ASK_TIMEOUT: Final = 1.0
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

Health = Callable[["Server"], list[str]]


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class Timeline:
    """Recent changes of this node's view of the fleet, from comparing successive samples."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self._draining = False
        self._redis: set[str] = set()
        self._nodes: set[str] = set()

    def _add(self, node: str, kind: str, subject: str) -> None:
        self.events.append({"t": time.time(), "node": node, "kind": kind, "subject": subject})

    def sample(self, server: Server) -> None:
        fleet = server.fleet
        me = fleet.name if fleet is not None else "local"
        if server.is_draining and not self._draining:
            self._add(me, "drain", me)
        self._draining = server.is_draining
        if fleet is None:
            return
        # An empty set is the node still starting: the first non-empty one is the baseline.
        redis = {str(link.node) for link in fleet.bus.links.values()}
        if self._redis:
            for added in sorted(redis - self._redis):
                self._add(me, "redis-added", added)
            for removed in sorted(self._redis - redis):
                self._add(me, "redis-removed", removed)
        self._redis = redis
        nodes = set(fleet.registry.live)
        if self._nodes:
            for joined in sorted(nodes - self._nodes):
                self._add(me, "node-joined", joined)
            for left in sorted(self._nodes - nodes):
                self._add(me, "node-left", left)
        self._nodes = nodes


def node_summary(
    server: Server, timeline: Timeline, health: Health, own_calls: Counter[str] | None = None
) -> dict[str, Any]:
    """What one node tells the view about itself (JSON-ready). ``own_calls`` are the view's
    own questions to the fleet by outcome: left out of the RPC counts, which are the app's."""
    stats = server.stats
    reasons = health(server)
    summary: dict[str, Any] = {
        "name": server.fleet.name if server.fleet is not None else "local",
        "version": __version__,
        "time": time.time(),
        "ready": not reasons,
        "reasons": reasons,
        "draining": server.is_draining,
        "connections": server.connection_count,
        "sockets": server.socket_count,
        "rooms": server.hub.total_rooms(),
        "roomMembers": server.hub.total_members(),
        "framesIn": stats.frames_in,
        "framesOut": stats.frames_out,
        "bytesIn": stats.bytes_in,
        "bytesOut": stats.bytes_out,
        "eventsHandled": stats.events_handled,
        "handlerErrors": stats.handler_errors,
        "cpuSeconds": time.process_time(),
        "rssBytes": _rss_bytes(),
        "events": list(timeline.events)[-EVENTS_SENT:],
    }
    fleet = server.fleet
    if fleet is None:
        summary["rpc"] = None
        summary["redis"] = []
        return summary
    calls = fleet.calls
    bus = fleet.bus
    working = set(bus.working_paths())
    own = own_calls or Counter()
    summary["rpc"] = {
        "complete": max(0, calls.completed - calls.timed_out - calls.failed - own["complete"]),
        "timeout": max(0, calls.timed_out - own["timeout"]),
        "failed": max(0, calls.failed - own["failed"]),
        "pending": len(calls),
    }
    summary["busPublished"] = sum(bus.stats.published_by_kind.values())
    summary["busReceived"] = sum(bus.stats.received_by_kind.values())
    summary["outageBuffer"] = len(bus.outage)
    summary["redis"] = [
        {
            "key": key,
            "address": str(link.node),
            "up": link.publisher_healthy and link.subscriber_healthy,
            "publishable": link.publishable,
            "latencySeconds": link.latency,
            "probeOk": key in working,
            "reconnects": link.health.reconnects,
            "error": link.health.last_error,
        }
        for key, link in sorted(bus.links.items())
    ]
    return summary


class FleetView:
    """Answers ``__wsfleet.view`` for the other nodes and builds ``/fleet.json``; owns the
    sampling task (:meth:`start` / :meth:`aclose`)."""

    def __init__(self, server: Server, health: Health) -> None:
        self.server = server
        self.health = health
        self.timeline = Timeline()
        self._task: asyncio.Task[None] | None = None
        self.own_calls: Counter[str] = Counter()
        """The view's own questions to the fleet, by outcome (not the app's RPC traffic)."""
        self._remembered: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        """Changes other nodes reported, kept after they leave (a node's own drain, say)."""

    def start(self) -> None:
        if self.server.fleet is not None:
            self.server.fleet.cross.listeners.add(VIEW_EVENT, self._answer)
        self.timeline.sample(self.server)
        self._task = asyncio.create_task(self._sample_loop(), name="wsfleet-fleet-view")

    async def aclose(self) -> None:
        if self.server.fleet is not None:
            self.server.fleet.cross.listeners.remove(VIEW_EVENT, self._answer)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.timeline.sample(self.server)

    def _answer(self, data: dict[str, Any], reply: Any) -> dict[str, Any] | None:
        if reply is None:
            return None
        return node_summary(self.server, self.timeline, self.health, self.own_calls)

    async def snapshot(self) -> dict[str, Any]:
        """This node's summary and every other live node's answer."""
        nodes: list[dict[str, Any]] = []
        missing: list[str] = []
        fleet = self.server.fleet
        result = await self._ask() if fleet is not None else None
        me = node_summary(self.server, self.timeline, self.health, self.own_calls)
        nodes.append(me)
        if fleet is not None:
            for name, payload in sorted(result.payloads.items()) if result else ():
                if name != me["name"] and isinstance(payload, dict):
                    payload["name"] = name  # the bus says who answered
                    nodes.append(payload)
            answered = {n["name"] for n in nodes}
            missing = sorted(name for name in fleet.registry.live if name not in answered)
        return {
            "self": me["name"],
            "time": time.time(),
            "fleet": fleet is not None,
            "nodes": nodes,
            "missing": missing,
            "events": self._remember(_merged_events(nodes)),
        }

    def _remember(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``events`` plus those of earlier snapshots that are gone from the answers now."""
        merged = [dict(e, seenBy=list(e["seenBy"])) for e in self._remembered]
        for event in events:
            _add_event(merged, event["kind"], event["subject"], event["t"], event["seenBy"])
        merged = sorted(merged, key=lambda e: e["t"], reverse=True)[:EVENTS_KEPT]
        self._remembered.clear()
        self._remembered.extend(merged)
        return merged

    async def _ask(self) -> CrossServerResult | None:
        fleet = self.server.fleet
        assert fleet is not None
        try:
            result = await fleet.cross.call(
                VIEW_EVENT,
                {},
                target_server=None,
                exclude_self=True,
                mode=CallMode.ALL,
                expected_responses=None,
                timeout=ASK_TIMEOUT,
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # the bus refuses (down, too many pending calls): this node only
            self.own_calls["failed"] += 1
            return None
        self.own_calls["complete" if result.success else "timeout"] += 1
        return result


def _merged_events(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every node's recent changes, newest first; a change seen by several nodes (a node that
    left, a Redis node hot-added everywhere) within ``SAME_CHANGE`` seconds is listed once, with
    who saw it."""
    merged: list[dict[str, Any]] = []
    for node in nodes:
        events = node.get("events")
        for event in events if isinstance(events, list) else ():
            if not isinstance(event, dict):
                continue
            kind, subject, at = event.get("kind"), event.get("subject"), event.get("t")
            if not (isinstance(kind, str) and isinstance(subject, str)):
                continue
            if not isinstance(at, int | float):
                continue
            _add_event(merged, kind, subject, float(at), [str(node.get("name"))])
    return sorted(merged, key=lambda e: e["t"], reverse=True)[:EVENTS_KEPT]


SAME_CHANGE: Final = 10.0


def _add_event(
    merged: list[dict[str, Any]], kind: str, subject: str, at: float, seen_by: list[str]
) -> None:
    for known in merged:
        same = known["kind"] == kind and known["subject"] == subject
        if same and abs(known["t"] - at) < SAME_CHANGE:
            known["t"] = min(known["t"], at)
            known["seenBy"] = sorted({*known["seenBy"], *seen_by})
            return
    merged.append({"t": at, "kind": kind, "subject": subject, "seenBy": sorted(set(seen_by))})
