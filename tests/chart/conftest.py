"""Fixtures for the chart tests: a real helm binary and the chart rendered over its value sets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.k8s_tools import required

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "wsfleet"
CRD = CHART / "crds" / "wsfleets.wsfleet.io.yaml"
RELEASE = "demo"
NAMESPACE = "realtime"

# name -> values file (None: the chart's defaults). The files live in the chart's ci/ folder, as
# chart-testing (ct) expects.
VALUE_SETS: dict[str, Path | None] = {
    "defaults": None,
    **{
        p.name.removesuffix("-values.yaml"): p for p in sorted((CHART / "ci").glob("*-values.yaml"))
    },
}

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> Path:
    return required("helm")


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def template_args(values: Path | None, *extra: str) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if values is not None:
        args += ["-f", str(values)]
    return [*args, *extra]


def render(helm: Path, values: Path | None, *extra: str) -> list[Manifest]:
    out = run_helm(helm, *template_args(values, *extra)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def rendered(helm: Path) -> dict[str, list[Manifest]]:
    """Every value set rendered once per session."""
    return {name: render(helm, path) for name, path in VALUE_SETS.items()}


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair of a nested manifest, for whole-document checks."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")
