"""Per-operator state: the API client, what is known about each fleet, metrics.

One :class:`Runtime` lives in kopf's memo for the life of one operator run. kopf handlers write
what they learn into :class:`FleetState` and "poke" the fleet; a single status loop
(:mod:`wsfleet_operator.handlers`) turns that into ``WsFleet.status``, so status has one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from .drift import Applied
from .kube import KubeClient
from .settings import OperatorSettings
from .status import CONDITION_TYPES, RedisReport

FleetKey = tuple[str, str]  # (namespace, name)

MEMO_KEY = "wsfleet_runtime"


@dataclass
class FleetState:
    uid: str | None = None
    generation: int | None = None  # spec generation last observed (applied or rejected)
    applied_generation: int | None = None  # spec generation last applied successfully
    error: str | None = None  # why the last apply failed
    rejected: bool = False  # the last failure needs a spec change (invalid spec, HTTP 4xx)
    applied: Applied = field(default_factory=Applied)  # what the API stored, per owned object
    replicas: int | None = None  # Deployment replicas last applied (for the Scaled event)
    deployment: dict[str, Any] | None = None
    deployment_known: bool = False  # ``deployment`` came from the API (None = it is absent)
    redis: RedisReport | None = None
    bus_key_error: str | None = None  # why the fleet's bus key cannot be read (None: fine)
    redis_due: bool = True  # probe Redis at the next status round, not only on the interval
    applied_at: float | None = None  # monotonic time of the last successful apply
    needs_apply: bool = False
    written: dict[str, Any] | None = None  # the status this operator last wrote
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "wsfleet_operator_reconciles",
            "Full applies of a fleet's objects, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "wsfleet_operator_reconcile_duration_seconds",
            "Time to apply a fleet's objects.",
            registry=r,
        )
        self.control_messages = Counter(
            "wsfleet_operator_control_messages",
            "redis.set control messages published, per Redis node, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.status_writes = Counter(
            "wsfleet_operator_status_writes", "Status patches written.", registry=r
        )
        self.fleets = Gauge("wsfleet_operator_fleets", "WsFleets this operator sees.", registry=r)
        # kube-state-metrics style (kube_deployment_status_condition): one series per status
        # value, 1 for the current one, so `{type="Degraded",status="true"} == 1` selects.
        self.conditions = Gauge(
            "wsfleet_operator_fleet_condition",
            "Conditions of each WsFleet's status (1 for the current status).",
            ["namespace", "wsfleet", "type", "status"],
            registry=r,
        )

    def set_conditions(self, key: tuple[str, str], conditions: Iterable[Any]) -> None:
        for cond in conditions:
            current = str(cond.get("status", "Unknown")).lower()
            for status in ("true", "false", "unknown"):
                self.conditions.labels(*key, cond.get("type"), status).set(
                    1 if status == current else 0
                )

    def forget(self, key: tuple[str, str]) -> None:
        for ctype in CONDITION_TYPES:
            for status in ("true", "false", "unknown"):
                with contextlib.suppress(KeyError):
                    self.conditions.remove(*key, ctype, status)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Runtime:
    def __init__(self, settings: OperatorSettings, kube: KubeClient) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = Metrics()
        self.fleets: dict[FleetKey, FleetState] = {}
        self._dirty: set[FleetKey] = set()
        self._wake = asyncio.Event()
        self.loop_task: asyncio.Task[None] | None = None
        self.last_round: float = time.monotonic()
        self._metrics_runner: web.AppRunner | None = None

    def state(self, key: FleetKey, uid: str | None = None) -> FleetState:
        """The fleet's state; a new incarnation (other uid, same name) starts from scratch."""
        st = self.fleets.get(key)
        if st is None or (uid is not None and st.uid is not None and st.uid != uid):
            st = self.fleets[key] = FleetState(uid=uid)
        elif uid is not None and st.uid is None:
            st.uid = uid
        return st

    def forget(self, key: FleetKey) -> None:
        self.fleets.pop(key, None)
        self._dirty.discard(key)
        self.metrics.forget(key)

    def poke(self, key: FleetKey) -> None:
        """Ask the status loop to refresh this fleet's status now."""
        self._dirty.add(key)
        self._wake.set()

    def take_dirty(self) -> set[FleetKey]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    async def wait_wake(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def start_metrics(self, host: str = "0.0.0.0") -> None:
        if self.settings.metrics_port <= 0:
            return

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(
                body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, self.settings.metrics_port).start()
        self._metrics_runner = runner

    async def close(self, tasks: Iterable[asyncio.Task[Any]] = ()) -> None:
        for task in [*tasks, *([self.loop_task] if self.loop_task else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await self.kube.close()
