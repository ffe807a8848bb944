"""The API server may answer ``null`` for a list or object field (e.g. ``"conditions": null`` right
after a create): ``.get(key, default)`` does not cover that, ``.get(key) or default`` does."""

from __future__ import annotations

import re
from pathlib import Path

from wsfleet_operator.model import FleetSpec
from wsfleet_operator.status import Observed, compute_status, condition

ROOT = Path(__file__).resolve().parents[2]
PATTERN = re.compile(r"""\.get\(\s*["'][A-Za-z]+["']\s*,\s*(\{\}|\[\])\s*\)""")


def test_null_fields_from_the_api_are_read_safely() -> None:
    fleet = FleetSpec.parse("chat", "ns", {"redis": {"nodes": [{"host": "a"}]}})
    dep = {
        "metadata": {"generation": 1},
        "status": {"conditions": None, "replicas": None, "readyReplicas": None},
    }
    status = compute_status(Observed(fleet, 1, dep), {"conditions": None, "redis": None})
    assert condition(status, "Ready")["status"] == "False"
    assert condition({"conditions": None}, "Ready") == {}


def test_no_get_with_a_mutable_default_on_api_objects() -> None:
    """Where API objects are read (the operator, the API-server tests), never .get(k, {}/[])."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in ("operator/wsfleet_operator", "tests/k8s")
        for path in sorted((ROOT / folder).glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PATTERN.search(line)
    ]
    assert offenders == []
