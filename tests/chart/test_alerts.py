"""The PrometheusRule: alerts on contract metrics, the operator's own metrics and two standard
series (`up`, kube-state-metrics), checked by the PromQL lint and, when Debian's prometheus
package is installed, by `promtool check rules` and `promtool test rules` (synthetic series: each
alert fires when it should, stays quiet when it should not, and fires when series disappear)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import Manifest, one
from tests.chart.promql import selectors

ALERTS = {
    "WsfleetNotReady",
    "WsfleetRedisNodeDown",
    "WsfleetBusProbeFailing",
    "WsfleetPublishFailures",
    "WsfleetSlowConsumerSpike",
    "WsfleetDegraded",
    "WsfleetFleetNotReady",
    "WsfleetPodCrashLooping",
    "WsfleetOperatorReconcileErrors",
    "WsfleetOperatorDown",
}
NEW_ALERTS = {
    "WsfleetDegraded",
    "WsfleetFleetNotReady",
    "WsfleetPodCrashLooping",
    "WsfleetOperatorReconcileErrors",
    "WsfleetOperatorDown",
}
PROMTOOL = shutil.which("promtool")


def groups(
    rendered: dict[str, list[Manifest]], value_set: str = "monitoring"
) -> list[dict[str, Any]]:
    return one(rendered[value_set], "PrometheusRule")["spec"]["groups"]


def test_the_alerts(rendered: dict[str, list[Manifest]]) -> None:
    (group,) = groups(rendered)
    rules = {r["alert"]: r for r in group["rules"]}
    assert set(rules) == ALERTS
    for name, rule in rules.items():
        selectors(rule["expr"])  # parses; contract names only; counters through rate()
        assert 'namespace!=""' in rule["expr"], "monitoring.prometheusRule.matchers is applied"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["for"], name
    assert rules["WsfleetSlowConsumerSpike"]["expr"].endswith("> 1")


def test_without_matchers_the_selectors_carry_only_their_own(
    rendered: dict[str, list[Manifest]],
) -> None:
    (group,) = groups(rendered, "fleet-off")
    for rule in group["rules"]:
        selectors(rule["expr"])
        assert 'namespace!=""' not in rule["expr"], rule["expr"]
        if rule["alert"] in ALERTS - NEW_ALERTS:
            assert "{" not in rule["expr"], rule["expr"]


def test_operator_down_needs_the_operators_pod_monitor(
    rendered: dict[str, list[Manifest]],
) -> None:
    """Without a scrape of the operator, absent(up) would fire for ever."""
    (group,) = groups(rendered, "monitoring")
    rules = {r["alert"]: r for r in group["rules"]}
    assert rules["WsfleetOperatorDown"]["expr"] == (
        'absent(up{job="wsfleet-operator",namespace="realtime",namespace!=""} == 1)'
    )
    pod_monitor = one(rendered["monitoring"], "PodMonitor")
    (endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True
    assert {"targetLabel": "job", "replacement": "wsfleet-operator"} in endpoint["relabelings"]


@pytest.fixture
def rules_file(rendered: dict[str, list[Manifest]], tmp_path: Path) -> Path:
    if PROMTOOL is None:
        pytest.skip(
            "promtool is not installed (Debian package prometheus; tools/ensure-system-deps.sh)"
        )
    path = tmp_path / "wsfleet-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups(rendered, "fleet-off")}))
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_rules(rules_file: Path) -> None:
    proc = promtool("check", "rules", str(rules_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def test_promtool_unit_tests(rules_file: Path, tmp_path: Path) -> None:
    a = {"namespace": "rt", "job": "chat", "pod": "chat-a"}
    b = {"namespace": "rt", "job": "chat", "pod": "chat-b"}
    other = {"namespace": "rt", "job": "quiet", "pod": "quiet-a"}
    r1, r2 = {"redis": "redis-1:6379/0"}, {"redis": "redis-2:6379/0"}
    series = [
        # chat-a not ready and not draining -> NotReady; chat-b not ready but draining -> quiet
        _series("wsfleet_ready", a, "0x20"),
        _series("wsfleet_draining", a, "0x20"),
        _series("wsfleet_ready", b, "0x20"),
        _series("wsfleet_draining", b, "1x20"),
        # redis-1 down for both pods -> RedisNodeDown; redis-2 down for one pod only -> quiet
        _series("wsfleet_redis_node_up", {**a, **r1}, "0x20"),
        _series("wsfleet_redis_node_up", {**b, **r1}, "0x20"),
        _series("wsfleet_redis_node_up", {**a, **r2}, "0x20"),
        _series("wsfleet_redis_node_up", {**b, **r2}, "1x20"),
        # probe through redis-2 failing on chat-a -> BusProbeFailing for that pair only
        _series("wsfleet_bus_probe_ok", {**a, **r1}, "1x20"),
        _series("wsfleet_bus_probe_ok", {**a, **r2}, "0x20"),
        # publish failures keep growing on chat; none on quiet
        _series("wsfleet_bus_publish_failures_total", a, "0+5x20"),
        _series("wsfleet_bus_publish_failures_total", other, "0x20"),
        # 2 slow-consumer disconnects/s on chat (> 1), 0.5/s on quiet
        _series("wsfleet_slow_consumer_disconnects_total", a, "0+120x20"),
        _series("wsfleet_slow_consumer_disconnects_total", other, "0+30x20"),
    ]
    fleet = {"namespace": "rt", "job": "chat"}
    tests: dict[str, Any] = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "WsfleetNotReady", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "WsfleetNotReady",
                        "exp_alerts": [{"exp_labels": {**a, "severity": "warning"}}],
                    },
                    {
                        "eval_time": "3m",
                        "alertname": "WsfleetRedisNodeDown",
                        "exp_alerts": [{"exp_labels": {**fleet, **r1, "severity": "warning"}}],
                    },
                    {
                        "eval_time": "6m",
                        "alertname": "WsfleetBusProbeFailing",
                        "exp_alerts": [{"exp_labels": {**a, **r2, "severity": "warning"}}],
                    },
                    {
                        "eval_time": "12m",
                        "alertname": "WsfleetPublishFailures",
                        "exp_alerts": [{"exp_labels": {**fleet, "severity": "critical"}}],
                    },
                    {"eval_time": "8m", "alertname": "WsfleetSlowConsumerSpike", "exp_alerts": []},
                    {
                        "eval_time": "17m",
                        "alertname": "WsfleetSlowConsumerSpike",
                        "exp_alerts": [{"exp_labels": {**fleet, "severity": "warning"}}],
                    },
                ],
            }
        ],
    }
    # Annotations are compared too: their templates must expand ($labels, $value | humanize).
    expected_summaries = {
        "WsfleetNotReady": "wsfleet node rt/chat-a is not ready",
        "WsfleetRedisNodeDown": "Redis node redis-1:6379/0 is down for fleet rt/chat",
        "WsfleetBusProbeFailing": "Bus probe of rt/chat-a through redis-2:6379/0 is failing",
        "WsfleetPublishFailures": "Fleet rt/chat fails to publish on the Redis bus",
        "WsfleetSlowConsumerSpike": "Fleet rt/chat disconnects many slow consumers",
    }
    values = {"WsfleetPublishFailures": "83.33m", "WsfleetSlowConsumerSpike": "2"}
    (group,) = yaml.safe_load(rules_file.read_text())["groups"]
    descriptions = {r["alert"]: r["annotations"]["description"] for r in group["rules"]}
    for case in tests["tests"][0]["alert_rule_test"]:
        name = case["alertname"]
        description = descriptions[name].replace("{{ $value | humanize }}", values.get(name, ""))
        assert "{{" not in description
        for alert in case["exp_alerts"]:
            alert["exp_annotations"] = {
                "summary": expected_summaries[name],
                "description": description,
            }
    path = tmp_path / "wsfleet-rules-test.yaml"
    path.write_text(yaml.safe_dump(tests))
    proc = promtool("test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_fleet_and_operator_alerts(rules_file: Path, tmp_path: Path) -> None:
    """The fleet-level alerts come from the operator and kube-state-metrics, so they fire when
    every pod crash-loops and the nodes' own series are gone; absent() catches a vanished
    operator."""
    op = {"namespace": "realtime", "job": "wsfleet-operator", "pod": "op-1"}

    def cond(fleet: str, ctype: str, status: str, values: str) -> dict[str, str]:
        labels = {**op, "namespace": "rt", "wsfleet": fleet, "type": ctype, "status": status}
        return _series("wsfleet_operator_fleet_condition", labels, values)

    series = [
        # chat: Degraded from minute 0; calm: never
        cond("chat", "Degraded", "true", "1x30"),
        cond("calm", "Degraded", "true", "0x30"),
        # chat: not Ready (every pod crash-looping: no node series at all); calm: Ready
        cond("chat", "Ready", "false", "1x30"),
        cond("calm", "Ready", "false", "0x30"),
        # kube-state-metrics: chat-a crash-looping for good; chat-b once, briefly
        _series(
            "kube_pod_container_status_waiting_reason",
            {
                "namespace": "rt",
                "pod": "chat-a",
                "container": "wsfleet",
                "reason": "CrashLoopBackOff",
            },
            "1x30",
        ),
        _series(
            "kube_pod_container_status_waiting_reason",
            {
                "namespace": "rt",
                "pod": "chat-b",
                "container": "wsfleet",
                "reason": "CrashLoopBackOff",
            },
            "1 0x29",
        ),
        # the operator fails to reconcile all along, then its target vanishes after 10 minutes
        _series("wsfleet_operator_reconciles_total", {**op, "outcome": "error"}, "0+3x30"),
        _series("up", op, "1x10 _x20"),
    ]
    rt_chat = {"namespace": "rt", "wsfleet": "chat"}
    cases = [
        ("8m", "WsfleetDegraded", []),
        ("11m", "WsfleetDegraded", [{**rt_chat, "severity": "warning"}]),
        ("14m", "WsfleetFleetNotReady", []),
        ("16m", "WsfleetFleetNotReady", [{**rt_chat, "severity": "warning"}]),
        (
            "21m",
            "WsfleetPodCrashLooping",
            [{"namespace": "rt", "pod": "chat-a", "severity": "warning"}],
        ),
        (
            "20m",
            "WsfleetOperatorReconcileErrors",
            [{"namespace": "realtime", "pod": "op-1", "severity": "warning"}],
        ),
        ("9m", "WsfleetOperatorDown", []),
        # the last sample counts for 5 minutes (lookback), then 5 more of absence
        ("19m", "WsfleetOperatorDown", []),
        ("21m", "WsfleetOperatorDown", [{"severity": "critical"}]),
    ]
    summaries = {
        "WsfleetDegraded": "WsFleet rt/chat is degraded",
        "WsfleetFleetNotReady": "WsFleet rt/chat has not been Ready for 15 minutes",
        "WsfleetPodCrashLooping": "wsfleet pod rt/chat-a is crash-looping",
        "WsfleetOperatorReconcileErrors": (
            "wsfleet-operator realtime/op-1 keeps failing to reconcile"
        ),
        "WsfleetOperatorDown": "wsfleet-operator is down",
    }
    (group,) = yaml.safe_load(rules_file.read_text())["groups"]
    descriptions = {
        r["alert"]: r["annotations"]["description"].replace("{{ $value | humanize }}", "50m")
        for r in group["rules"]
    }

    def annotated(name: str, labels: dict[str, str]) -> dict[str, Any]:
        assert "{{" not in descriptions[name]
        annotations = {"summary": summaries[name], "description": descriptions[name]}
        return {"exp_labels": labels, "exp_annotations": annotations}

    tests: dict[str, Any] = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": name,
                        "exp_alerts": [annotated(name, labels) for labels in expected],
                    }
                    for at, name, expected in cases
                ],
            }
        ],
    }
    path = tmp_path / "wsfleet-fleet-rules-test.yaml"
    path.write_text(yaml.safe_dump(tests))
    proc = promtool("test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
