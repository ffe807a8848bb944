"""Pure status computation: what the operator knows -> ``WsFleet.status``.

Conditions in the shape of the Kubernetes API conventions (type, status, reason, message,
lastTransitionTime, observedGeneration); ``lastTransitionTime`` only moves when ``status`` flips.
``observedGeneration`` is the generation the operator has seen, applied or rejected.

- ``Ready``: the current spec is applied, its rollout is complete and every wanted replica is
  ready (a pod is ready only when its node has a working path through Redis).
- ``Progressing``: the spec is being applied, the Deployment is rolling out or scaling; False with
  ``Complete`` when settled, ``ProgressDeadlineExceeded`` when stuck, ``SpecRejected`` when the
  spec cannot be applied.
- ``RedisHealthy``: every listed Redis node answers the operator's PING (the operator's view).
- ``Degraded``: something needs a human: the spec was rejected, the last reconcile failed, the
  operator cannot read the fleet's bus key (``BusKeyUnreadable``), the rollout is stuck, some
  or all Redis nodes are down, or ``spec.replicas`` was clamped.
- ``Reconciling`` and ``Stalled``: the pair kstatus reads (Flux, Argo CD's gitops-engine,
  ``kpt live status``, cli-utils): Reconciling mirrors Progressing being True; Stalled is True
  when the operator cannot make progress without a spec change (rejected spec, stuck rollout).
  With observedGeneration that makes a fleet Current, InProgress or Failed in those tools.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import FleetSpec
from .resources import selector_string

CONDITION_TYPES = ("Ready", "Progressing", "RedisHealthy", "Degraded", "Reconciling", "Stalled")


@dataclass(frozen=True)
class RedisReport:
    """One probe round over a fleet's Redis nodes."""

    healthy: Mapping[str, bool]  # node key (host:port/db) -> answered PING
    live_nodes: int | None  # fleet nodes with an unexpired lease, None when no registry was read
    errors: Mapping[str, str] = field(default_factory=dict)  # node key -> why it is unhealthy


@dataclass(frozen=True)
class Observed:
    """What the operator saw; the input of :func:`compute_status`."""

    fleet: FleetSpec
    generation: int | None  # the spec generation observed (applied or rejected)
    deployment: Mapping[str, Any] | None
    redis: RedisReport | None = None
    error: str | None = None  # the last reconcile's failure, None after a success
    rejected: bool = False  # the error will not heal without a spec change
    applied: bool = True  # the observed generation has been applied
    bus_key_error: str | None = None  # why the operator cannot sign with the fleet's bus key


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(
    ctype: str, ok: bool | None, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    cond: dict[str, Any] = {"type": ctype, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def _deployment_numbers(dep: Mapping[str, Any] | None) -> dict[str, int]:
    st = (dep or {}).get("status") or {}
    meta = (dep or {}).get("metadata") or {}
    return {
        "replicas": int(st.get("replicas") or 0),
        "ready": int(st.get("readyReplicas") or 0),
        "updated": int(st.get("updatedReplicas") or 0),
        "generation": int(meta.get("generation") or 0),
        "observed": int(st.get("observedGeneration") or 0),
    }


def _deployment_condition(dep: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any]:
    for cond in ((dep or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


def compute_conditions(obs: Observed) -> list[dict[str, Any]]:
    fleet, gen, dep = obs.fleet, obs.generation, obs.deployment
    want = fleet.effective_replicas
    n = _deployment_numbers(dep)

    # Progressing
    stuck = _deployment_condition(dep, "Progressing").get("reason") == "ProgressDeadlineExceeded"
    if obs.rejected:
        prog = _cond("Progressing", False, "SpecRejected", obs.error or "spec rejected", gen)
    elif not obs.applied:
        why = f"retrying: {obs.error}" if obs.error else "applying the spec"
        prog = _cond("Progressing", True, "Applying", why, gen)
    elif dep is None:
        prog = _cond("Progressing", True, "Creating", "creating the Deployment", gen)
    elif stuck:
        prog = _cond("Progressing", False, "ProgressDeadlineExceeded", "the rollout is stuck", gen)
    elif n["observed"] < n["generation"]:
        prog = _cond("Progressing", True, "RolloutPending", "the Deployment has a new spec", gen)
    elif n["updated"] < want:
        msg = f"{n['updated']}/{want} replicas updated"
        prog = _cond("Progressing", True, "RollingUpdate", msg, gen)
    elif n["replicas"] > want:
        msg = f"{n['replicas']} replicas running, {want} wanted"
        prog = _cond("Progressing", True, "ScalingDown", msg, gen)
    elif n["ready"] < want:
        msg = f"{n['ready']}/{want} replicas ready"
        prog = _cond("Progressing", True, "WaitingForReplicas", msg, gen)
    else:
        prog = _cond("Progressing", False, "Complete", f"{want} replicas up to date", gen)

    # Ready: only once the current spec is applied and rolled out
    done = prog["reason"] == "Complete"
    if obs.rejected:
        ready = _cond("Ready", False, "SpecRejected", prog["message"], gen)
    elif dep is None and obs.applied:
        ready = _cond("Ready", False, "DeploymentMissing", "the Deployment does not exist yet", gen)
    elif want == 0 and done:
        ready = _cond("Ready", False, "ScaledToZero", "spec.replicas is 0", gen)
    elif done:
        ready = _cond("Ready", True, "AllReplicasReady", f"{n['ready']}/{want} replicas ready", gen)
    elif prog["status"] == "True" and prog["reason"] != "WaitingForReplicas":
        ready = _cond("Ready", False, "RolloutInProgress", prog["message"], gen)
    elif stuck:
        ready = _cond("Ready", False, "RolloutStuck", prog["message"], gen)
    else:
        ready = _cond(
            "Ready", False, "ReplicasNotReady", f"{n['ready']}/{want} replicas ready", gen
        )

    # RedisHealthy
    keys = [node.key for node in fleet.redis_nodes]
    report = obs.redis
    down = [k for k in keys if report is not None and not report.healthy.get(k, False)]
    if report is None:
        redis = _cond("RedisHealthy", None, "NotProbed", "no probe round yet", gen)
    elif not down:
        redis = _cond("RedisHealthy", True, "AllNodesUp", f"{len(keys)}/{len(keys)} up", gen)
    elif len(down) == len(keys):
        redis = _cond("RedisHealthy", False, "AllNodesDown", _down_message(down, report), gen)
    else:
        redis = _cond("RedisHealthy", False, "NodesDown", _down_message(down, report), gen)

    # Degraded: the first of these that applies is the reason; the message lists them all.
    problems: list[tuple[str, str]] = []
    if obs.error:
        problems.append(("SpecRejected" if obs.rejected else "ReconcileFailed", obs.error))
    if obs.bus_key_error:
        problems.append(("BusKeyUnreadable", obs.bus_key_error))
    if stuck:
        problems.append(("RolloutStuck", "the Deployment exceeded its progress deadline"))
    if report is not None and down:
        reason = "RedisUnreachable" if len(down) == len(keys) else "RedisNodesDown"
        problems.append((reason, _down_message(down, report)))
    if fleet.clamp_message:
        problems.append(("ReplicasClamped", fleet.clamp_message))
    if problems:
        msg = "; ".join(m for _, m in problems)
        degraded = _cond("Degraded", True, problems[0][0], msg, gen)
    else:
        degraded = _cond("Degraded", False, "AsExpected", "nothing to report", gen)

    return [ready, prog, redis, degraded, *kstatus_conditions(prog, stuck, obs.rejected, gen)]


def kstatus_conditions(
    prog: Mapping[str, Any], stuck: bool, rejected: bool, gen: int | None
) -> list[dict[str, Any]]:
    """``Reconciling`` and ``Stalled`` (abnormal-true, as kstatus reads them) from Progressing."""
    busy = prog["status"] == "True"
    reconciling = _cond("Reconciling", busy, prog["reason"], prog["message"], gen)
    if rejected or stuck:
        stalled = _cond("Stalled", True, prog["reason"], prog["message"], gen)
    else:
        stalled = _cond("Stalled", False, "AsExpected", "progressing normally", gen)
    return [reconciling, stalled]


def rejected_conditions(
    message: str, generation: int | None, old: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A spec the operator cannot even read (the CRD schema should have refused it)."""
    rejected = {"reason": "SpecRejected", "message": message}
    out = [
        _cond("Ready", False, generation=generation, **rejected),
        _cond("Progressing", False, generation=generation, **rejected),
        _cond("Degraded", True, generation=generation, **rejected),
        _cond("Reconciling", False, generation=generation, **rejected),
        _cond("Stalled", True, generation=generation, **rejected),
    ]
    kept = [dict(c) for c in old if c.get("type") == "RedisHealthy"]
    return out[:2] + kept + out[2:]


def _down_message(down: Sequence[str], report: RedisReport) -> str:
    parts = [f"{k} ({report.errors[k]})" if k in report.errors else k for k in down]
    return "down: " + ", ".join(parts)


def merge_transition_times(
    new: list[dict[str, Any]], old: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Keep ``lastTransitionTime`` of conditions whose ``status`` did not change."""
    before = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        keep = prev is not None and prev.get("status") == cond["status"]
        stamp = prev.get("lastTransitionTime") if keep and prev is not None else None
        out.append({**cond, "lastTransitionTime": stamp or now})
    return out


def compute_status(
    obs: Observed, old_status: Mapping[str, Any] | None, now: str | None = None
) -> dict[str, Any]:
    """The full ``status`` to write. ``old_status`` supplies what this round did not learn."""
    old = dict(old_status or {})
    n = _deployment_numbers(obs.deployment)
    status: dict[str, Any] = {
        "replicas": n["replicas"],
        "readyReplicas": n["ready"],
        "selector": selector_string(obs.fleet.name),
    }
    generation = obs.generation if obs.generation is not None else old.get("observedGeneration")
    if generation is not None:
        status["observedGeneration"] = int(generation)
    if obs.redis is not None:
        status["redis"] = [
            {"address": node.key, "healthy": bool(obs.redis.healthy.get(node.key, False))}
            for node in obs.fleet.redis_nodes
        ]
        if obs.redis.live_nodes is not None:
            status["liveNodes"] = obs.redis.live_nodes
    for key in ("redis", "liveNodes"):
        if key not in status and key in old:
            status[key] = old[key]
    conditions = compute_conditions(
        Observed(
            obs.fleet,
            generation,
            obs.deployment,
            obs.redis,
            obs.error,
            rejected=obs.rejected,
            applied=obs.applied,
            bus_key_error=obs.bus_key_error,
        )
    )
    status["conditions"] = merge_transition_times(
        conditions, old.get("conditions") or (), now or now_rfc3339()
    )
    return status


def condition(status: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any]:
    for cond in (status or {}).get("conditions") or ():
        if cond.get("type") == ctype:
            return dict(cond)
    return {}
