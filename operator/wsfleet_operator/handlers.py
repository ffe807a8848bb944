"""kopf handlers: reconcile each WsFleet into its owned objects, hot-plug Redis, report status.

- create / update / resume: server-side apply of every owned object (idempotent; the same
  handler serves all three, so a restart of the operator re-applies everything once).
- field ``spec.redis``: apply the ConfigMap (never the pod template: no restart), then publish the
  ``redis.set`` control message on every Redis node of the old and the new list, signed with the
  fleet's bus key when ``spec.busKeySecretRef`` names one (:mod:`wsfleet_operator.bus_key`).
- events on owned Deployments: remember their status, refresh the fleet's status at once.
- events on every owned kind (Deployment, Services, ConfigMap, PDB): a deletion or a hand edit
  of a field the operator applied (:mod:`wsfleet_operator.drift`) is repaired within seconds.
- index of WsFleets: the status loop's list of fleets, kept by kopf's own watch.
- startup: kopf settings (state in annotations, watch timeouts), the API client, the status loop.

No finalizer: owned objects carry ownerReferences, so the garbage collector deletes them with the
WsFleet, and the operator keeps no state outside the cluster. kopf adds a finalizer only for delete
handlers, daemons or timers, which is why the periodic work is one operator-wide loop instead of
a per-object timer: deleting a WsFleet never waits for the operator, even when it is not running.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from . import constants as c
from . import events, redis_probe, resources
from .bus_key import read_bus_key
from .kube import KubeClient, KubeError, login
from .model import RedisNodeSpec, SpecError
from .runtime import MEMO_KEY, FleetKey, Runtime
from .settings import OperatorSettings, SettingsError
from .sync import (
    apply_all,
    observe_generation,
    owner_of,
    parse_fleet,
    record_failure,
    resolve_targets,
    status_loop,
)

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
    # kopf's own Events only for warnings and failures; the operator posts its transitions itself.
    settings.posting.level = logging.WARNING
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
        observe_generation(st, body)
        st.error = f"invalid spec: {exc}"
        st.rejected = True
        runtime.poke((meta["namespace"], meta["name"]))
        raise kopf.PermanentError(st.error) from exc
    runtime.state((fleet.namespace, fleet.name)).redis_due = True
    await apply_all(runtime, body, fleet)


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
    cm = resources.configmap(fleet, owner=owner_of(body))
    try:
        st.applied.record(cm, await runtime.kube.apply(cm))  # our own edit is not drift
    except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise record_failure(runtime, st, (fleet.namespace, fleet.name), exc) from exc
    st.redis_due = True

    old_nodes: list[RedisNodeSpec] = []
    for raw in (old or {}).get("nodes") or ():
        try:
            old_nodes.append(RedisNodeSpec.parse(raw))
        except (SpecError, ValueError, TypeError):
            continue
    every = {n.key: n for n in [*old_nodes, *fleet.redis_nodes]}  # new entries win on a clash
    targets = await resolve_targets(runtime, fleet.namespace, tuple(every.values()))
    channel = redis_probe.control_channel(fleet.bridge_prefix)
    payload = redis_probe.control_message(fleet.addresses, fleet.serialization)
    bus_key = await read_bus_key(runtime.kube, fleet.namespace, fleet.bus_key)
    st.bus_key_error = bus_key.error
    if bus_key.error is not None:
        # The nodes would drop an unsigned redis.set: say why instead of publishing it.
        runtime.metrics.control_messages.labels("failed").inc(len(targets))
        runtime.poke((fleet.namespace, fleet.name))
        message = (
            f"Redis nodes now {', '.join(n.key for n in fleet.redis_nodes)}; redis.set not "
            f"published: cannot sign it: {bus_key.error}; pods still read the list from the "
            "ConfigMap"
        )
        logger.warning("%s", message)
        await events.post(runtime.kube, body, "Warning", "RedisHotPlugUnsigned", message)
        return
    if bus_key.keys is not None:
        payload = redis_probe.sign_control(payload, channel, bus_key.keys, fleet.serialization)
    results = await redis_probe.publish(
        targets,
        channel=channel,
        payload=payload,
        timeout=runtime.settings.redis_timeout,
        verify_tls=runtime.settings.redis_tls_verify,
    )
    failed = {k: v for k, v in results.items() if isinstance(v, str)}
    runtime.metrics.control_messages.labels("published").inc(len(results) - len(failed))
    runtime.metrics.control_messages.labels("failed").inc(len(failed))
    # A node that is gone is the usual reason to edit the list: never retry on failures. Pods
    # still pick the list up from the ConfigMap file.
    told = sorted(set(results) - set(failed))
    logger.info(
        "Redis nodes now %s; redis.set published on %s; failed on %s",
        fleet.addresses,
        told,
        failed or "none",
    )
    runtime.poke((fleet.namespace, fleet.name))
    nodes = ", ".join(n.key for n in fleet.redis_nodes)
    if failed:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
        message = (
            f"Redis nodes now {nodes}; redis.set reached {len(told)} of {len(results)} Redis "
            f"nodes (failed: {why}); pods still read the list from the ConfigMap"
        )
        await events.post(runtime.kube, body, "Warning", "RedisHotPlugPartlyFailed", message)
    else:
        message = f"Redis nodes now {nodes}; redis.set published on {len(told)} Redis nodes"
        await events.post(runtime.kube, body, "Normal", "RedisNodesUpdated", message)


# ---------------------------------------------------------------------------------------------
# Owned Deployments


def owner_fleet(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == c.KIND and str(ref.get("apiVersion", "")).startswith(c.GROUP + "/"):
            return str(ref.get("name"))
    return None


def _owned_changed(
    runtime: Runtime, kind: str, event_type: str | None, body: Mapping[str, Any], ns: str | None
) -> FleetKey | None:
    """Mark the owner for a re-apply when an owned object was deleted or edited by hand."""
    owner = owner_fleet(body)
    if owner is None:
        return None
    key = (ns or "", owner)
    st = runtime.state(key)
    if event_type == "DELETED" or st.applied.drifted(kind, body):
        if not st.needs_apply:
            name = (body.get("metadata") or {}).get("name")
            what = "deleted" if event_type == "DELETED" else "changed by someone else"
            log.info("%s %s/%s was %s: re-applying", kind, ns, name, what)
        st.needs_apply = True
        runtime.poke(key)
    return key


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
async def deployment_event(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    runtime = runtime_of(memo)
    key = _owned_changed(runtime, "Deployment", type, body, namespace)
    if key is None:
        return
    st = runtime.state(key)
    if type == "DELETED":
        st.deployment, st.deployment_known = None, True
    else:
        st.deployment, st.deployment_known = copy.deepcopy(dict(body)), True
    runtime.poke(key)


@kopf.on.event("", "v1", "services", labels=OWNED)
async def service_event(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    _owned_changed(runtime_of(memo), "Service", type, body, namespace)


@kopf.on.event("", "v1", "configmaps", labels=OWNED)
async def configmap_event(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    _owned_changed(runtime_of(memo), "ConfigMap", type, body, namespace)


@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
async def pdb_event(type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any) -> None:
    _owned_changed(runtime_of(memo), "PodDisruptionBudget", type, body, namespace)
