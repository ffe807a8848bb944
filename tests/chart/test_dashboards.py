"""Lint of the Grafana dashboards (the useful rules of grafana/dashboard-linter, re-implemented):
a $datasource variable used by every panel and target, every expression parses, only contract
metrics, counters through rate(), histograms through histogram_quantile over _bucket,
$__rate_interval for every range, legends that name labels the query keeps, a sane grid."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.chart import contract
from tests.chart.conftest import CHART
from tests.chart.promql import output_labels, selectors, variables

DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def test_three_dashboards_with_unique_uids() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "wsfleet-node.json",
        "wsfleet-overview.json",
        "wsfleet-redis-bus.json",
    ]
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == 3 and all(len(u) <= 40 for u in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_lint(path: Path) -> None:
    board = load(path)
    assert board["title"].startswith("wsfleet / ") and board["description"]
    assert board["schemaVersion"] >= 36 and "wsfleet" in board["tags"]
    templating = {v["name"]: v for v in board["templating"]["list"]}
    ds = templating["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for var in templating.values():
        if var["type"] != "query":
            continue
        assert var["datasource"] == DATASOURCE, var["name"]
        match = LABEL_VALUES.match(var["definition"])
        assert match, var["definition"]
        assert var["query"]["query"] == var["definition"]
        (sel,) = selectors(match["selector"])
        assert match["label"] in (
            contract.LABELS.get(sel.metric, frozenset()) | {"namespace", "job", "pod"}
        )
        assert variables(var["definition"]) <= set(templating), var["name"]

    used: set[str] = set()
    grid: set[tuple[int, int]] = set()
    ids = set()
    for panel in panels(board):
        assert panel["id"] not in ids
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & grid, f"{panel['title']} overlaps another panel"
        grid |= cells
        if panel["type"] == "row":
            continue
        where = f"{path.name}: {panel['title']}"
        assert panel["title"] and panel["description"], where
        assert panel["datasource"] == DATASOURCE, where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert panel["targets"], where
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), where
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"] == DATASOURCE, where
            found = selectors(expr)
            used |= {s.metric for s in found}
            assert variables(expr) <= set(templating), f"{where}: undefined variable in {expr!r}"
            if "[" in expr:
                assert "[$__rate_interval]" in expr, f"{where}: use $__rate_interval"
            legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            kept = output_labels(expr)
            if kept is not None:
                assert legend_labels <= kept, (
                    f"{where}: legend {legend_labels} but result has {set(kept)}"
                )
    assert used, path.name


def test_dashboards_cover_every_contract_metric() -> None:
    used: set[str] = set()
    for path in DASHBOARDS:
        for panel in panels(load(path)):
            for target in panel.get("targets", []):
                used |= {s.metric for s in selectors(target["expr"])}
    assert contract.ALL - used == set()


@pytest.mark.parametrize(
    "expr",
    [
        "sum(wsfleet_connections_accepted_total)",  # counter without rate
        "sum(rate(wsfleet_connections[5m]))",  # gauge in rate
        "sum(wsfleet_connection_count)",  # not in the contract
        "histogram_quantile(0.9, sum(rate(wsfleet_rpc_duration_seconds_bucket[5m])))",  # le dropped
        "sum(rate(wsfleet_rpc_duration_seconds_bucket[5m]))",  # bucket outside histogram_quantile
        "sum(rate(wsfleet_sent_bytes_total[1m30s]))",  # a fixed range
        'sum(wsfleet_redis_node_up{host="a"})',  # a label the metric does not have
        "sum(rate(wsfleet_sent_bytes_total[$__rate_interval])",  # does not parse
    ],
)
def test_the_lint_catches(expr: str) -> None:
    with pytest.raises((AssertionError, ValueError, SyntaxError)):
        selectors(expr)
