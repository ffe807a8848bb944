"""Fixtures of the Kubernetes end-to-end tests: a whole test cluster (:mod:`.cluster`) per module.

The cluster needs root (network namespaces, mounts), iproute2, nginx and the tools built by
``make k8s-deps``. Without them the tests are skipped with the reason, or fail when
``WSFLEET_REQUIRE_K8S=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.chart.k8s_tools import REQUIRE, ToolMissing, tool
from tests.k8s_e2e.cluster import Cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "k8s_e2e: runs a whole test Kubernetes cluster (tests/k8s_e2e/conftest.py)"
    )


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the k8s end-to-end test needs root (network namespaces and mounts for its pods)"
    if shutil.which("ip") is None:
        return "the k8s end-to-end test needs iproute2's `ip`: run `make system-deps`"
    if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
        return "the k8s end-to-end test needs nginx as its ingress: run `make system-deps`"
    try:
        for name in (
            "kube-apiserver",
            "etcd",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
            "helm",
        ):
            tool(name)
    except ToolMissing as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    why = _why_not()
    if why is not None:
        if REQUIRE:
            pytest.fail(f"{why} (WSFLEET_REQUIRE_K8S=1, so this fails instead of skipping)", False)
        pytest.skip(why)
    c = Cluster(nodes=2)
    c.start()
    try:
        yield c
    finally:
        c.stop()
