"""Drift detection of owned objects and the Events posted on transitions (pure functions)."""

from __future__ import annotations

from typing import Any

from wsfleet_operator import events, resources
from wsfleet_operator.drift import Applied, project
from wsfleet_operator.model import FleetSpec


def fleet(**spec: Any) -> FleetSpec:
    spec.setdefault("redis", {"nodes": [{"host": "a"}]})
    return FleetSpec.parse("chat", "prod", spec)


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server answers to an apply: defaults added, quantities canonical."""
    out: dict[str, Any] = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "7"}}
    if obj["kind"] == "Service":
        out["spec"] = {**obj["spec"], "clusterIP": "10.0.0.9", "sessionAffinity": "None"}
    return out


def test_defaults_and_others_fields_are_not_drift() -> None:
    svc = resources.service(fleet())
    applied = Applied()
    applied.record(svc, stored(svc))
    later = stored(svc)
    later["metadata"]["annotations"] = {"someone-else": "x"}  # a field we never set
    later["status"] = {"loadBalancer": {}}
    assert applied.drifted("Service", later) is False


def test_a_hand_edit_of_an_applied_field_is_drift() -> None:
    dep = resources.deployment(fleet())
    applied = Applied()
    applied.record(dep, stored(dep))
    edited = stored(dep)
    edited["spec"] = {**edited["spec"], "replicas": 9}
    assert applied.drifted("Deployment", edited) is True
    label_removed = stored(dep)
    label_removed["metadata"] = {**label_removed["metadata"], "labels": {}}
    assert applied.drifted("Deployment", label_removed) is True


def test_an_object_this_run_never_applied_is_unknown() -> None:
    assert Applied().drifted("ConfigMap", resources.configmap(fleet())) is None


def test_values_compare_in_the_api_servers_spelling() -> None:
    desired = {"spec": {"cpu": "0.5", "ports": [{"port": 80}]}}
    answer = {"spec": {"cpu": "500m", "ports": [{"port": 80, "protocol": "TCP"}]}}
    applied = Applied()
    applied.record({"kind": "X", "metadata": {"name": "x"}, **desired}, answer)
    same = {"kind": "X", "metadata": {"name": "x"}, **answer}
    assert project(same, desired) == {"spec": {"cpu": "500m", "ports": [{"port": 80}]}}
    longer = {"spec": {"cpu": "500m", "ports": [{"port": 80}, {"port": 81}]}}
    assert project(longer, desired)["spec"]["ports"] == longer["spec"]["ports"]


def cond(ctype: str, status: str, reason: str, message: str = "m") -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def test_events_on_transitions_only() -> None:
    calm = [cond("Ready", "True", "AllReplicasReady"), cond("Degraded", "False", "AsExpected")]
    assert events.transitions(calm, calm) == []
    degraded = [calm[0], cond("Degraded", "True", "SpecRejected", "HTTP 422: bad")]
    assert events.transitions(calm, degraded) == [("Warning", "SpecRejected", "HTTP 422: bad")]
    assert events.transitions(degraded, calm) == [
        ("Normal", "Recovered", "no longer degraded (was SpecRejected)")
    ]
    other = [calm[0], cond("Degraded", "True", "RedisUnreachable", "down: a")]
    assert events.transitions(degraded, other) == [("Warning", "RedisUnreachable", "down: a")]


def test_rollout_events() -> None:
    done = [cond("Progressing", "False", "Complete", "2 replicas up to date")]
    rolling = [cond("Progressing", "True", "RollingUpdate", "1/2 replicas updated")]
    assert events.transitions(done, rolling) == [
        ("Normal", "Progressing", "RollingUpdate: 1/2 replicas updated")
    ]
    ready = [*done, cond("Ready", "True", "AllReplicasReady", "2/2 replicas ready")]
    assert events.transitions([*rolling, cond("Ready", "False", "RolloutInProgress")], ready) == [
        ("Normal", "RolloutComplete", "2 replicas up to date"),
        ("Normal", "Ready", "2/2 replicas ready"),
    ]


def test_event_object_names_the_fleet() -> None:
    body = {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "metadata": {"name": "chat", "namespace": "prod", "uid": "u-1"},
    }
    ev = events.event_object(body, "Warning", "SpecRejected", "x" * 5000)
    assert ev["involvedObject"] == {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "name": "chat",
        "namespace": "prod",
        "uid": "u-1",
    }
    assert ev["metadata"]["namespace"] == "prod"
    assert ev["metadata"]["name"].startswith("chat.")
    assert len(ev["message"]) == 1024
    assert (ev["type"], ev["reason"], ev["source"]) == (
        "Warning",
        "SpecRejected",
        {"component": "wsfleet-operator"},
    )


def test_condition_gauge_follows_kube_state_metrics_conventions() -> None:
    """One series per status value, 1 for the current one; gone when the fleet is forgotten.
    The alert tests (tests/chart/test_alerts.py) read these names."""
    from wsfleet_operator.runtime import Metrics

    metrics = Metrics()
    metrics.reconciles.labels("error").inc()
    metrics.set_conditions(("rt", "chat"), [cond("Degraded", "True", "SpecRejected")])
    text = metrics.render().decode()
    line = (
        'wsfleet_operator_fleet_condition{namespace="rt",status="%s",type="Degraded",'
        'wsfleet="chat"}'
    )
    assert line % "true" + " 1.0" in text
    assert line % "false" + " 0.0" in text
    assert line % "unknown" + " 0.0" in text
    assert 'wsfleet_operator_reconciles_total{outcome="error"} 1.0' in text
    metrics.forget(("rt", "chat"))
    assert "wsfleet_operator_fleet_condition{" not in metrics.render().decode()
