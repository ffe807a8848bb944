"""Status and conditions computed from what the operator saw (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from wsfleet_operator.model import FleetSpec
from wsfleet_operator.status import (
    Observed,
    RedisReport,
    compute_conditions,
    compute_status,
    condition,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def fleet(**spec: Any) -> FleetSpec:
    spec.setdefault("redis", {"nodes": [{"host": "a"}, {"host": "b"}]})
    return FleetSpec.parse("chat", "prod", spec)


def deployment(
    replicas: int = 2,
    ready: int = 2,
    updated: int | None = None,
    generation: int = 1,
    observed: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
            "observedGeneration": observed,
            "conditions": conditions or [],
        },
    }


UP = RedisReport({"a:6379/0": True, "b:6379/0": True}, live_nodes=2)


def conds(obs: Observed) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in compute_conditions(obs)}


def test_all_ready_is_ready_complete_healthy_not_degraded() -> None:
    got = conds(Observed(fleet(), 3, deployment(), UP))
    assert got == {
        "Ready": ("True", "AllReplicasReady"),
        "Progressing": ("False", "Complete"),
        "RedisHealthy": ("True", "AllNodesUp"),
        "Degraded": ("False", "AsExpected"),
        "Reconciling": ("False", "Complete"),
        "Stalled": ("False", "AsExpected"),
    }


@pytest.mark.parametrize(
    ("dep", "ready", "progressing"),
    [
        (None, ("False", "DeploymentMissing"), ("True", "Creating")),
        (deployment(ready=1), ("False", "ReplicasNotReady"), ("True", "WaitingForReplicas")),
        # Ready only once the rollout is complete, even with every replica ready
        (
            deployment(generation=2, observed=1),
            ("False", "RolloutInProgress"),
            ("True", "RolloutPending"),
        ),
        (deployment(updated=1), ("False", "RolloutInProgress"), ("True", "RollingUpdate")),
        (
            deployment(replicas=3, ready=3),
            ("False", "RolloutInProgress"),
            ("True", "ScalingDown"),
        ),
    ],
)
def test_deployment_states(
    dep: dict[str, Any] | None, ready: tuple[str, str], progressing: tuple[str, str]
) -> None:
    got = conds(Observed(fleet(), 1, dep, UP))
    assert got["Ready"] == ready
    assert got["Progressing"] == progressing
    assert got["Reconciling"] == progressing  # kstatus: InProgress exactly while progressing
    assert got["Stalled"] == ("False", "AsExpected")


def test_stuck_rollout_is_degraded() -> None:
    stuck = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    got = conds(Observed(fleet(), 1, deployment(ready=1, conditions=stuck), UP))
    assert got["Progressing"] == ("False", "ProgressDeadlineExceeded")
    assert got["Degraded"] == ("True", "RolloutStuck")
    assert got["Ready"] == ("False", "RolloutStuck")
    assert got["Stalled"] == ("True", "ProgressDeadlineExceeded")  # kstatus: Failed
    assert got["Reconciling"][0] == "False"


def test_a_rejected_spec_is_stalled_not_in_progress() -> None:
    """kstatus reports Failed (Stalled True, Reconciling False), not InProgress forever."""
    obs = Observed(fleet(), 5, deployment(), UP, "HTTP 422: bad tolerations", True, False)
    got = conds(obs)
    assert got["Degraded"] == ("True", "SpecRejected")
    assert got["Stalled"] == ("True", "SpecRejected")
    assert got["Reconciling"] == ("False", "SpecRejected")
    assert got["Ready"] == ("False", "SpecRejected")
    assert got["Progressing"] == ("False", "SpecRejected")
    status = compute_status(obs, None, T0)
    assert status["observedGeneration"] == 5  # the generation seen, though not applied
    assert all(c["observedGeneration"] == 5 for c in status["conditions"])


def test_a_failing_apply_that_may_heal_is_in_progress() -> None:
    obs = Observed(fleet(), 5, deployment(), UP, "HTTP 503: busy", False, False)
    got = conds(obs)
    assert got["Degraded"] == ("True", "ReconcileFailed")
    assert got["Reconciling"] == ("True", "Applying")
    assert got["Stalled"][0] == "False"
    assert got["Ready"] == ("False", "RolloutInProgress")


def test_scaled_to_zero_is_not_ready() -> None:
    got = conds(Observed(fleet(replicas=0), 1, deployment(replicas=0, ready=0), UP))
    assert got["Ready"] == ("False", "ScaledToZero")
    assert got["Progressing"] == ("False", "Complete")


def test_redis_conditions() -> None:
    one_down = RedisReport({"a:6379/0": True, "b:6379/0": False}, 2, {"b:6379/0": "refused"})
    all_down = RedisReport({"a:6379/0": False, "b:6379/0": False}, None)
    assert conds(Observed(fleet(), 1, deployment(), None))["RedisHealthy"] == (
        "Unknown",
        "NotProbed",
    )
    got = compute_conditions(Observed(fleet(), 1, deployment(), one_down))
    redis, degraded = got[2], got[3]
    assert (redis["status"], redis["reason"]) == ("False", "NodesDown")
    assert redis["message"] == "down: b:6379/0 (refused)"
    assert (degraded["status"], degraded["reason"]) == ("True", "RedisNodesDown")
    got2 = conds(Observed(fleet(), 1, deployment(), all_down))
    assert got2["RedisHealthy"] == ("False", "AllNodesDown")
    assert got2["Degraded"] == ("True", "RedisUnreachable")


def test_degraded_lists_every_problem_first_one_is_the_reason() -> None:
    f = fleet(replicas=9, autoscaling={"maxReplicas": 3})
    down = RedisReport({"a:6379/0": True, "b:6379/0": False}, 1)
    (_, _, _, degraded, _, _) = compute_conditions(
        Observed(f, 1, deployment(replicas=3, ready=3), down, error="HTTP 422: bad")
    )
    assert degraded["reason"] == "ReconcileFailed"
    assert "HTTP 422: bad" in degraded["message"]
    assert "down: b:6379/0" in degraded["message"]
    assert "spec.replicas 9 is outside spec.autoscaling; running 3" in degraded["message"]
    (_, _, _, only_clamp, _, _) = compute_conditions(Observed(f, 1, deployment(3, 3), UP))
    assert only_clamp["reason"] == "ReplicasClamped"


def test_status_fields_and_observed_generation() -> None:
    st = compute_status(Observed(fleet(), 7, deployment(replicas=2, ready=1), UP), None, T0)
    assert st["replicas"] == 2
    assert st["readyReplicas"] == 1
    assert st["selector"] == "app.kubernetes.io/name=wsfleet,app.kubernetes.io/instance=chat"
    assert st["observedGeneration"] == 7
    assert st["liveNodes"] == 2
    assert st["redis"] == [
        {"address": "a:6379/0", "healthy": True},
        {"address": "b:6379/0", "healthy": True},
    ]
    assert [c["type"] for c in st["conditions"]] == [
        "Ready",
        "Progressing",
        "RedisHealthy",
        "Degraded",
        "Reconciling",
        "Stalled",
    ]
    assert all(c["observedGeneration"] == 7 for c in st["conditions"])
    assert all(c["lastTransitionTime"] == T0 for c in st["conditions"])


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = compute_status(Observed(fleet(), 1, deployment(ready=1), UP), None, T0)
    same = compute_status(Observed(fleet(), 1, deployment(ready=1), UP), first, T1)
    assert same == first
    flipped = compute_status(Observed(fleet(), 1, deployment(ready=2), UP), first, T1)
    assert condition(flipped, "Ready")["lastTransitionTime"] == T1
    assert condition(flipped, "RedisHealthy")["lastTransitionTime"] == T0


def test_what_this_round_did_not_learn_is_kept() -> None:
    first = compute_status(Observed(fleet(), 4, deployment(), UP), None, T0)
    # no generation applied yet by this operator process, no Redis probe yet
    later = compute_status(Observed(fleet(), None, deployment(), None), first, T1)
    assert later["observedGeneration"] == 4
    assert later["liveNodes"] == 2
    assert later["redis"] == first["redis"]
    fresh = compute_status(Observed(fleet(), None, None, None), None, T0)
    assert "observedGeneration" not in fresh
    assert "liveNodes" not in fresh
    assert (fresh["replicas"], fresh["readyReplicas"]) == (0, 0)
