"""helm and kubectl for the tests, built from their Go modules by tools/k8s-controlplane/build.sh
(``make k8s-deps``) into the per-machine cache outside the checkout, beside kube-apiserver.

``tool(name)`` returns the binary's path or raises :class:`ToolMissing` with one sentence saying
how to get it; ``required(name)`` turns that into a skip, or a failure when
``WSFLEET_REQUIRE_K8S=1`` (CI), so CI cannot pass by skipping. ``$WSFLEET_K8S_BIN_DIR``, when set,
is searched first (as for kube-apiserver in tests/k8s).
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = ROOT / "tools" / "k8s-controlplane" / "build.sh"
REQUIRE = os.environ.get("WSFLEET_REQUIRE_K8S") == "1"
TOOLS = ("helm", "kubectl", "kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler")


class ToolMissing(RuntimeError):
    pass


@functools.cache
def _cache_path(name: str) -> Path:
    out = subprocess.run(
        ["bash", str(BUILD_SH), "--path", name], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def tool(name: str) -> Path:
    """The path of a built tool (``helm``, ``kubectl``, ...); raises ToolMissing."""
    if name not in TOOLS:
        raise ValueError(name)
    override = os.environ.get("WSFLEET_K8S_BIN_DIR")
    if override and (Path(override) / name).is_file():
        return Path(override) / name
    path = _cache_path(name)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    raise ToolMissing(
        f"{name} is not built: run `make k8s-deps` (it builds {name} from its Go module into "
        f"{path.parent}; needs Go 1.26+)."
    )


def required(name: str) -> Path:
    """``tool(name)``, or skip the test saying why (fail instead under WSFLEET_REQUIRE_K8S=1)."""
    try:
        return tool(name)
    except ToolMissing as exc:
        if REQUIRE:
            pytest.fail(f"{exc} (WSFLEET_REQUIRE_K8S=1, so this fails instead of skipping)", False)
        pytest.skip(str(exc))
