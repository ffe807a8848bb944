"""kopf handlers: reconcile each WsFleet into its owned objects, hot-plug Redis, report status.

- create / update / resume: server-side apply of every owned object (idempotent; the same
  handler serves all three, so a restart of the operator re-applies everything once).
- field ``spec.redis``: apply the ConfigMap (never the pod template: no restart), then publish the
  ``redis.set`` control message on every Redis node of the old and the new list.
- event on owned Deployments: remember their status, refresh the fleet's status at once.
- index of WsFleets: the status loop's list of fleets, kept by kopf's own watch.
- startup: kopf settings (state in annotations, watch timeouts), the API client, the status loop.

No finalizer: owned objects carry ownerReferences, so the garbage collector deletes them with the
WsFleet, and the operator keeps no state outside the cluster. kopf adds a finalizer only for delete
handlers, daemons or timers, which is why the periodic work is one operator-wide loop instead of
a per-object timer: deleting a WsFleet never waits for the operator, even when it is not running.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from . import constants as c
from . import redis_probe, resources
from .kube import KubeClient, KubeError, login
from .model import FleetSpec, RedisNodeSpec, SpecError
from .runtime import MEMO_KEY, FleetKey, FleetState, Runtime
from .settings import OperatorSettings, SettingsError
from .status import Observed, compute_status

log = logging.getLogger("wsfleet_operator")

CRD = (c.GROUP, c.VERSION, c.PLURAL)
OWNED = {c.LABEL_MANAGED_BY: c.MANAGED_BY}


def runtime_of(memo: Any) -> Runtime:
    runtime = memo.get(MEMO_KEY)
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return runtime


# ---------------------------------------------------------------------------------------------
# Operator lifecycle


@kopf.on.login()
def login_handler(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    return login(settings)


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **kwargs: Any
) -> None:
    try:
        op = OperatorSettings.from_env()
    except SettingsError as exc:
        raise kopf.PermanentError(str(exc)) from exc  # the operator exits saying why
    # kopf's own state lives in annotations under our group, so status stays strictly typed.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=c.GROUP, v1=False
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.GROUP, key="last-handled-configuration", v1=False
    )
    settings.persistence.finalizer = f"{c.GROUP}/finalizer"  # not added: no delete handlers
    settings.watching.server_timeout = op.watch_server_timeout
    settings.watching.client_timeout = op.watch_server_timeout + 30
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING  # k8s Events only for warnings and failures
    # No watching of CRDs and namespaces (less RBAC): the WsFleet API must be served before the
    # operator watches it, so wait for it here (kopf retries a failing startup handler).
    settings.scanning.disabled = True
    kube = KubeClient(lambda: login(settings))
    try:
        served = await kube.request("GET", f"/apis/{c.API_VERSION}")
    except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        await kube.close()
        raise kopf.TemporaryError(f"cannot reach the API server: {exc}", delay=5) from exc
    if not any(r.get("name") == c.PLURAL for r in (served or {}).get("resources") or ()):
        await kube.close()
        raise kopf.TemporaryError(
            f"waiting for the CRD {c.PLURAL}.{c.GROUP} to be installed", delay=5
        )
    runtime = Runtime(op, kube)
    memo[MEMO_KEY] = runtime
    await runtime.start_metrics()
    index = kwargs["fleets"]  # kopf passes every index to every handler, by its name
    runtime.loop_task = asyncio.create_task(status_loop(runtime, index), name="wsfleet-status")
    logger.info(
        "wsfleet operator started: status every %ss, resync every %ss",
        op.status_interval,
        op.resync_interval,
    )


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    runtime = memo.get(MEMO_KEY)
    if isinstance(runtime, Runtime):
        await runtime.close()


@kopf.on.probe(id="status_loop")
def status_loop_probe(memo: Any, **_: Any) -> float:
    """Liveness: fails when the status loop died or stopped turning."""
    runtime = runtime_of(memo)
    task = runtime.loop_task
    if task is None or task.done():
        raise kopf.PermanentError("the status loop is not running")
    age = time.monotonic() - runtime.last_round
    if age > max(4 * runtime.settings.status_interval, 60.0):
        raise kopf.PermanentError(f"the status loop has not turned for {age:.0f}s")
    return round(age, 1)


# ---------------------------------------------------------------------------------------------
# The WsFleet


@kopf.index(*CRD)
def fleets(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[FleetKey, dict[str, Any]]:
    """(namespace, name) -> a snapshot of the WsFleet, for the status loop."""
    return {(namespace or "", name): copy.deepcopy(dict(body))}


def parse_fleet(body: Mapping[str, Any]) -> FleetSpec:
    meta = body["metadata"]
    return FleetSpec.parse(meta["name"], meta["namespace"], body.get("spec") or {})


def _owner(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", c.API_VERSION),
        "kind": body.get("kind", c.KIND),
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
    }


def _fail(runtime: Runtime, st: FleetState, key: FleetKey, exc: Exception) -> Exception:
    """Record a failed apply for status; pick kopf's retry policy for it.

    400/404/422 (the object is invalid, or its namespace is gone) will not heal by retrying: the
    next spec edit triggers a new attempt. Anything else (403, 409, 5xx, network) is retried.
    """
    if isinstance(exc, KubeError):
        st.error = f"HTTP {exc.status}: {exc.body[:300]}"
    else:
        st.error = f"{type(exc).__name__}: {exc}"[:300]
    runtime.metrics.reconciles.labels("error").inc()
    runtime.poke(key)
    if isinstance(exc, KubeError) and exc.status in (400, 404, 422):
        return kopf.PermanentError(st.error)
    return kopf.TemporaryError(st.error, delay=10)


async def apply_all(runtime: Runtime, body: Mapping[str, Any], fleet: FleetSpec) -> None:
    """Server-side apply every owned object; record the outcome for the status loop."""
    key = (fleet.namespace, fleet.name)
    st = runtime.state(key, body["metadata"].get("uid"))
    generation = body["metadata"].get("generation")
    started = time.perf_counter()
    async with st.lock:
        try:
            for obj in resources.owned_objects(fleet, owner=_owner(body)):
                result = await runtime.kube.apply(obj)
                if obj["kind"] == "Deployment":
                    st.deployment, st.deployment_known = result, True
        except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _fail(runtime, st, key, exc) from exc
        st.generation = int(generation) if generation is not None else st.generation
        st.error = None
        st.needs_apply = False
        st.applied_at = time.monotonic()
    runtime.metrics.reconciles.labels("ok").inc()
    runtime.metrics.reconcile_seconds.observe(time.perf_counter() - started)
    runtime.poke(key)


@kopf.on.resume(*CRD)
@kopf.on.create(*CRD)
@kopf.on.update(*CRD)
async def reconcile(body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    try:
        fleet = parse_fleet(body)
    except (SpecError, ValueError, TypeError) as exc:
        meta = body["metadata"]
        st = runtime.state((meta["namespace"], meta["name"]), meta.get("uid"))
        st.error = f"invalid spec: {exc}"
        runtime.poke((meta["namespace"], meta["name"]))
        raise kopf.PermanentError(st.error) from exc
    runtime.state((fleet.namespace, fleet.name)).redis_due = True
    await apply_all(runtime, body, fleet)


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


@kopf.on.field(*CRD, field="spec.redis")
async def redis_changed(
    old: Any, new: Any, body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Hot-plug: new ConfigMap content, then a ``redis.set`` on every old and new Redis node."""
    if old is None or old == new:
        return  # creation: nothing runs yet that could listen
    runtime = runtime_of(memo)
    try:
        fleet = parse_fleet(body)
    except (SpecError, ValueError, TypeError) as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    st = runtime.state((fleet.namespace, fleet.name), body["metadata"].get("uid"))
    try:
        await runtime.kube.apply(resources.configmap(fleet, owner=_owner(body)))
    except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _fail(runtime, st, (fleet.namespace, fleet.name), exc) from exc
    st.redis_due = True

    old_nodes: list[RedisNodeSpec] = []
    for raw in (old or {}).get("nodes") or ():
        try:
            old_nodes.append(RedisNodeSpec.parse(raw))
        except (SpecError, ValueError, TypeError):
            continue
    every = {n.key: n for n in [*old_nodes, *fleet.redis_nodes]}  # new entries win on a clash
    targets = await resolve_targets(runtime, fleet.namespace, tuple(every.values()))
    payload = redis_probe.control_message(fleet.addresses, fleet.serialization)
    results = await redis_probe.publish(
        targets,
        channel=redis_probe.control_channel(fleet.bridge_prefix),
        payload=payload,
        timeout=runtime.settings.redis_timeout,
        verify_tls=runtime.settings.redis_tls_verify,
    )
    failed = {k: v for k, v in results.items() if isinstance(v, str)}
    runtime.metrics.control_messages.labels("published").inc(len(results) - len(failed))
    runtime.metrics.control_messages.labels("failed").inc(len(failed))
    # A node that is gone is the usual reason to edit the list: never retry on failures. Pods
    # still pick the list up from the ConfigMap file.
    logger.info(
        "Redis nodes now %s; redis.set published on %s; failed on %s",
        fleet.addresses,
        sorted(set(results) - set(failed)),
        failed or "none",
    )
    runtime.poke((fleet.namespace, fleet.name))


# ---------------------------------------------------------------------------------------------
# Owned Deployments


def owner_fleet(body: Mapping[str, Any]) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("kind") == c.KIND and str(ref.get("apiVersion", "")).startswith(c.GROUP + "/"):
            return str(ref.get("name"))
    return None


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
async def deployment_event(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    owner = owner_fleet(body)
    if owner is None:
        return
    runtime = runtime_of(memo)
    key = (namespace or "", owner)
    st = runtime.state(key)
    if type == "DELETED":
        st.deployment, st.deployment_known = None, True
        st.needs_apply = True  # someone deleted it: the status loop re-creates it
    else:
        st.deployment, st.deployment_known = copy.deepcopy(dict(body)), True
    runtime.poke(key)


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
    st = runtime.state(key, meta.get("uid"))
    try:
        fleet = parse_fleet(body)
    except (SpecError, ValueError, TypeError):
        return  # reconcile() reported it; nothing sensible to compute
    resync = runtime.settings.resync_interval
    due = st.applied_at is not None and time.monotonic() - st.applied_at > resync
    if st.needs_apply or due:
        try:
            await apply_all(runtime, body, fleet)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            log.warning("re-applying %s/%s failed: %s", *key, exc)
    if not st.deployment_known:
        try:
            st.deployment = await runtime.kube.get("apps/v1", "Deployment", *key)
            st.deployment_known = True
        except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("reading Deployment %s/%s failed: %s", *key, exc)
    if probe or st.redis_due or st.redis is None:
        st.redis_due = False
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
    new = compute_status(Observed(fleet, st.generation, st.deployment, st.redis, st.error), base)
    if new == current:
        return
    try:
        await runtime.kube.patch_status(*key, new)
    except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("writing status of %s/%s failed: %s", *key, exc)
        return
    st.written = new
    runtime.metrics.status_writes.inc()


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
