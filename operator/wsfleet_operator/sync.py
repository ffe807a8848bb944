"""The work behind the handlers: applying a fleet's objects, and the status loop.

- :func:`apply_all`: server-side apply of every owned object; the outcome is recorded in the
  fleet's :class:`~wsfleet_operator.runtime.FleetState` for the status loop.
- :func:`status_loop`: the single writer of ``WsFleet.status``. It answers pokes at once and
  visits every fleet (with a Redis probe) every ``status_interval``; it re-applies a fleet whose
  objects drifted or were deleted, or at the resync interval, and posts Events on transitions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
import orjson

from . import constants as c
from . import events, redis_probe, resources
from .bus_key import read_bus_key
from .kube import KubeError
from .model import FleetSpec, RedisNodeSpec, SpecError
from .runtime import FleetKey, FleetState, Runtime
from .status import (
    Observed,
    compute_status,
    merge_transition_times,
    now_rfc3339,
    rejected_conditions,
)

log = logging.getLogger("wsfleet_operator")


def parse_fleet(body: Mapping[str, Any]) -> FleetSpec:
    meta = body["metadata"]
    return FleetSpec.parse(meta["name"], meta["namespace"], body.get("spec") or {})


def owner_of(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", c.API_VERSION),
        "kind": body.get("kind", c.KIND),
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
    }


def record_failure(runtime: Runtime, st: FleetState, key: FleetKey, exc: Exception) -> Exception:
    """Record a failed apply for status; pick kopf's retry policy for it.

    400/404/422 (the object is invalid, or its namespace is gone) will not heal by retrying: the
    next spec edit triggers a new attempt. Anything else (403, 409, 5xx, network) is retried.
    400/422 mean the API server rejected what the spec asks for: status says SpecRejected.
    """
    if isinstance(exc, KubeError):
        st.error = f"HTTP {exc.status}: {_api_message(exc.body)}"
        st.rejected = exc.status in (400, 422)
    else:
        st.error = f"{type(exc).__name__}: {exc}"[:300]
        st.rejected = False
    runtime.metrics.reconciles.labels("error").inc()
    runtime.poke(key)
    if isinstance(exc, KubeError) and exc.status in (400, 404, 422):
        return kopf.PermanentError(st.error)
    return kopf.TemporaryError(st.error, delay=10)


def _api_message(body: str) -> str:
    """The ``message`` of a Kubernetes Status body, else the body's start."""
    try:
        message = orjson.loads(body).get("message")
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    return str(message or body)[:600]


def observe_generation(st: FleetState, body: Mapping[str, Any]) -> int | None:
    generation = body["metadata"].get("generation")
    if generation is not None:
        st.generation = int(generation)
    return st.generation


async def apply_all(runtime: Runtime, body: Mapping[str, Any], fleet: FleetSpec) -> None:
    """Server-side apply every owned object; record the outcome for the status loop."""
    key = (fleet.namespace, fleet.name)
    st = runtime.state(key, body["metadata"].get("uid"))
    generation = observe_generation(st, body)
    started = time.perf_counter()
    scaled_from = None
    async with st.lock:
        try:
            for obj in resources.owned_objects(fleet, owner=owner_of(body)):
                result = await runtime.kube.apply(obj)
                st.applied.record(obj, result)
                if obj["kind"] == "Deployment":
                    st.deployment, st.deployment_known = result, True
        except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise record_failure(runtime, st, key, exc) from exc
        st.applied_generation = generation
        st.error = None
        st.rejected = False
        st.needs_apply = False
        st.applied_at = time.monotonic()
        if st.replicas is not None and st.replicas != fleet.effective_replicas:
            scaled_from = st.replicas
        st.replicas = fleet.effective_replicas
    runtime.metrics.reconciles.labels("ok").inc()
    runtime.metrics.reconcile_seconds.observe(time.perf_counter() - started)
    runtime.poke(key)
    if scaled_from is not None:
        message = f"replicas {scaled_from} -> {fleet.effective_replicas}"
        await events.post(runtime.kube, body, "Normal", "Scaled", message)


async def resolve_targets(
    runtime: Runtime, namespace: str, nodes: tuple[RedisNodeSpec, ...]
) -> list[redis_probe.Target]:
    """Nodes plus their passwords, read from the Secrets the spec names."""
    secrets: dict[str, Mapping[str, Any] | str] = {}
    targets = []
    for node in nodes:
        if node.secret_name is None or node.secret_key is None:
            targets.append(redis_probe.Target(node))
            continue
        if node.secret_name not in secrets:
            try:
                obj = await runtime.kube.get("v1", "Secret", namespace, node.secret_name)
                secrets[node.secret_name] = (obj or {}).get("data") or {}
                if obj is None:
                    secrets[node.secret_name] = f"Secret {node.secret_name} not found"
            except KubeError as exc:
                secrets[node.secret_name] = f"cannot read Secret {node.secret_name}: {exc.status}"
        data = secrets[node.secret_name]
        if isinstance(data, str):
            targets.append(redis_probe.Target(node, error=data))
            continue
        raw = data.get(node.secret_key)
        if raw is None:
            err = f"Secret {node.secret_name} has no key {node.secret_key}"
            targets.append(redis_probe.Target(node, error=err))
            continue
        try:
            password = base64.b64decode(raw).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            err = f"Secret {node.secret_name}/{node.secret_key} is not text"
            targets.append(redis_probe.Target(node, error=err))
            continue
        targets.append(redis_probe.Target(node, password=password))
    return targets


# ---------------------------------------------------------------------------------------------
# The status loop: the single writer of WsFleet.status


def _snapshot(index: Any, key: FleetKey) -> dict[str, Any] | None:
    store = index.get(key) if index is not None else None
    for value in store or ():
        return value if isinstance(value, dict) else None
    return None


async def sync_fleet(runtime: Runtime, key: FleetKey, body: Mapping[str, Any], probe: bool) -> None:
    """Bring one fleet's status up to date (and repair its objects when due)."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return  # going away: repairing its children now would fight the garbage collector
    st = runtime.state(key, meta.get("uid"))
    try:
        fleet = parse_fleet(body)
    except (SpecError, ValueError, TypeError) as exc:
        await _write_rejected(runtime, key, body, st, f"invalid spec: {exc}")
        return
    resync = runtime.settings.resync_interval
    due = st.applied_at is not None and time.monotonic() - st.applied_at > resync
    if st.needs_apply or due:
        try:
            await apply_all(runtime, body, fleet)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            log.warning("re-applying %s/%s failed: %s", *key, exc)
            if st.rejected:
                # Retried at the next spec edit, drift or resync, not at every status round.
                st.needs_apply = False
                st.applied_at = time.monotonic()
    if not st.deployment_known:
        try:
            st.deployment = await runtime.kube.get("apps/v1", "Deployment", *key)
            st.deployment_known = True
        except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("reading Deployment %s/%s failed: %s", *key, exc)
    if probe or st.redis_due or st.redis is None:
        st.redis_due = False
        st.bus_key_error = (await read_bus_key(runtime.kube, fleet.namespace, fleet.bus_key)).error
        targets = await resolve_targets(runtime, fleet.namespace, fleet.redis_nodes)
        st.redis = await redis_probe.probe(
            targets,
            bridge_prefix=fleet.bridge_prefix,
            timeout=runtime.settings.redis_timeout,
            verify_tls=runtime.settings.redis_tls_verify,
        )
    current = body.get("status") or {}
    # The index may not show our last write yet: take transition times from what we wrote.
    base = st.written if st.written is not None else current
    observed = observe_generation(st, body)
    obs = Observed(
        fleet,
        observed,
        st.deployment,
        st.redis,
        st.error,
        rejected=st.rejected,
        applied=st.applied_generation is not None and st.applied_generation == observed,
        bus_key_error=st.bus_key_error,
    )
    await _write_status(runtime, key, body, st, current, compute_status(obs, base))


async def _write_rejected(
    runtime: Runtime, key: FleetKey, body: Mapping[str, Any], st: FleetState, message: str
) -> None:
    current = body.get("status") or {}
    base = st.written if st.written is not None else current
    new = {k: v for k, v in base.items() if k != "conditions"}
    generation = observe_generation(st, body)
    if generation is not None:
        new["observedGeneration"] = generation
    conditions = rejected_conditions(message, generation, base.get("conditions") or ())
    new["conditions"] = merge_transition_times(
        conditions, base.get("conditions") or (), now_rfc3339()
    )
    await _write_status(runtime, key, body, st, current, new)


async def _write_status(
    runtime: Runtime,
    key: FleetKey,
    body: Mapping[str, Any],
    st: FleetState,
    current: Mapping[str, Any],
    new: dict[str, Any],
) -> None:
    runtime.metrics.set_conditions(key, new.get("conditions") or ())
    if new == current:
        return
    before = (st.written if st.written is not None else current).get("conditions") or ()
    try:
        await runtime.kube.patch_status(*key, new)
    except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("writing status of %s/%s failed: %s", *key, exc)
        return
    st.written = new
    runtime.metrics.status_writes.inc()
    for kind, reason, message in events.transitions(before, new.get("conditions") or ()):
        await events.post(runtime.kube, body, kind, reason, message)


async def status_loop(runtime: Runtime, index: Any) -> None:
    """Poked fleets at once; every fleet (with a Redis probe) every ``status_interval``."""
    interval = runtime.settings.status_interval
    next_full = time.monotonic()
    limit = asyncio.Semaphore(8)
    while True:
        await runtime.wait_wake(next_full - time.monotonic())
        now = time.monotonic()
        full = now >= next_full
        keys = runtime.take_dirty()
        if full:
            next_full = now + interval
            keys |= set(index) if index is not None else set()
        runtime.metrics.fleets.set(len(index) if index is not None else 0)

        async def one(key: FleetKey, full: bool) -> None:
            body = _snapshot(index, key)
            if body is None:
                runtime.forget(key)
                return
            async with limit:
                try:
                    await sync_fleet(runtime, key, body, probe=full)
                except Exception:  # the loop must outlive any one fleet's surprise
                    log.exception("status of %s/%s failed", *key)

        await asyncio.gather(*(one(k, full) for k in keys))
        runtime.last_round = time.monotonic()
