"""PromQL lint shared by the dashboard and alert tests: parse with promql-parser, then check every
series against the contract's metric names and types."""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser as pp

from tests.chart import contract

RATE_FUNCS = frozenset({"rate", "increase", "irate"})
OVER_TIME_FUNCS = frozenset({"max_over_time", "min_over_time", "avg_over_time"})
# Labels Prometheus (through the ServiceMonitor) adds to every series of a node.
SCRAPE_LABELS = frozenset(
    {"namespace", "job", "pod", "fleet", "instance", "service", "container", "endpoint"}
)
GRAFANA_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)[^}]*\}")


@dataclass(frozen=True)
class Selector:
    series: str
    metric: str  # the contract metric (histograms: without _bucket/_sum/_count)
    labels: frozenset[str]
    parents: tuple[str, ...]  # enclosing calls and aggregations, innermost last
    grouping: tuple[frozenset[str] | None, ...]  # "by" labels of each enclosing aggregation


def _walk(node: object, parents: tuple[str, ...], grouping: tuple, out: list[Selector]) -> None:
    if isinstance(node, pp.MatrixSelector):
        _walk(node.vector_selector, (*parents, "[range]"), grouping, out)
    elif isinstance(node, pp.VectorSelector):
        name = node.name or ""
        metric = contract.base_name(name)
        if metric is None:
            raise AssertionError(f"{name!r} is not a metric of the contract")
        labels = frozenset(m.name for m in node.matchers.matchers)
        out.append(Selector(name, metric, labels, parents, grouping))
    elif isinstance(node, pp.Call):
        for arg in node.args:
            _walk(arg, (*parents, node.func.name), grouping, out)
    elif isinstance(node, pp.AggregateExpr):
        by = None
        if node.modifier is not None and node.modifier.type == pp.AggModifierType.By:
            by = frozenset(node.modifier.labels)
        _walk(node.expr, (*parents, str(node.op)), (*grouping, by), out)
        if node.param is not None:
            _walk(node.param, parents, grouping, out)
    elif isinstance(node, pp.BinaryExpr):
        _walk(node.lhs, parents, grouping, out)
        _walk(node.rhs, parents, grouping, out)
    elif isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        _walk(node.expr, parents, grouping, out)
    elif isinstance(node, (pp.NumberLiteral, pp.StringLiteral)):
        pass
    else:  # pragma: no cover - a new node type: teach the lint about it
        raise AssertionError(f"unknown PromQL node {type(node).__name__}")


def selectors(expr: str) -> list[Selector]:
    """Parse ``expr`` (Grafana variables allowed in label values and as $__rate_interval) and
    check every series: contract name, allowed labels, counters only through rate()/increase(),
    histograms only as rate(_bucket) inside histogram_quantile with ``le`` kept."""
    for match in re.finditer(r"\[([^\]]*)\]", expr):
        assert match.group(1) in ("$__rate_interval", "5m", "10m", "15m", "1h"), (
            f"range [{match.group(1)}] in {expr!r}"
        )
    text = expr.replace("$__rate_interval", "5m")
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    assert "$" not in stripped, f"a Grafana variable outside a label value in {expr!r}"
    out: list[Selector] = []
    _walk(pp.parse(text), (), (), out)
    assert out, f"no series in {expr!r}"
    for sel in out:
        allowed = SCRAPE_LABELS | contract.LABELS.get(sel.metric, frozenset())
        assert sel.labels <= allowed, f"{sel.series}: unknown labels {set(sel.labels - allowed)}"
        in_rate = (
            len(sel.parents) >= 2 and sel.parents[-1] == "[range]" and sel.parents[-2] in RATE_FUNCS
        )
        if sel.metric in contract.ALERT_COUNTERS:
            assert in_rate, f"counter {sel.series} must be wrapped in rate()/increase(): {expr!r}"
        elif sel.metric in contract.HISTOGRAMS:
            assert sel.series.endswith("_bucket") or sel.series.endswith(("_sum", "_count"))
            assert in_rate, f"histogram series {sel.series} must be wrapped in rate(): {expr!r}"
            if sel.series.endswith("_bucket"):
                assert "histogram_quantile" in sel.parents, (
                    f"{sel.series} outside histogram_quantile"
                )
                assert all(g is not None and "le" in g for g in sel.grouping), (
                    f"every aggregation over {sel.series} must keep 'le': {expr!r}"
                )
        else:
            assert not set(sel.parents) & RATE_FUNCS, f"gauge {sel.series} inside rate(): {expr!r}"
            over_time = len(sel.parents) >= 2 and sel.parents[-2] in OVER_TIME_FUNCS
            assert "[range]" not in sel.parents or over_time, (
                f"gauge {sel.series} as a range outside *_over_time(): {expr!r}"
            )
    return out


def output_labels(expr: str) -> frozenset[str] | None:
    """The labels of the result when the outermost operation is an aggregation with ``by``
    (through histogram_quantile, which drops ``le``); None when unknown."""
    node = pp.parse(expr.replace("$__rate_interval", "5m"))
    drop: set[str] = set()
    while True:
        if isinstance(node, pp.ParenExpr):
            node = node.expr
        elif isinstance(node, pp.Call) and node.func.name == "histogram_quantile":
            node = node.args[1]
            drop.add("le")
        else:
            break
    if isinstance(node, pp.AggregateExpr):
        if node.modifier is None:
            return frozenset()
        if node.modifier.type == pp.AggModifierType.By:
            return frozenset(node.modifier.labels) - drop
    return None


def variables(text: str) -> set[str]:
    return {a or b for a, b in GRAFANA_VARIABLE.findall(text)} - {"__rate_interval"}
