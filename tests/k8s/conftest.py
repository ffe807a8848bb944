"""Fixtures for tests against a real Kubernetes API server (kube-apiserver + etcd, no kubelet).

Put tests that need the API server in this directory (``tests/k8s/``): the fixtures below are
visible only here. Mark them ``pytestmark = pytest.mark.k8s`` (registered below).

``kube_api`` (session scope) -> :class:`tests.k8s.controlplane.ControlPlane`, started once per
test session:

- ``.url``: ``https://127.0.0.1:<port>``; ``.ca_file``: the CA that signed its serving cert.
- ``.kubeconfig``: path of a kubeconfig (JSON, which is YAML) for the admin, with token auth and
  the CA; works with kubectl, the kubernetes client and kopf (``KUBECONFIG=...``).
  ``.env(user=None)`` returns ``os.environ`` with ``KUBECONFIG`` set, for subprocesses.
- ``.admin_token``: bearer token of user ``admin`` (group ``system:masters``: every right).
- ``.user_token(name)`` / ``.kubeconfig_for(name)``: static users in no group, so with no rights
  until a test binds a (Cluster)Role to them: ``wsfleet-operator`` and ``wsfleet-user``
  (``controlplane.DEFAULT_USERS``). RBAC subject: ``{"kind": "User", "name": "wsfleet-operator",
  "apiGroup": "rbac.authorization.k8s.io"}``.
- ``.service_account_token(namespace, name)``: creates a ServiceAccount and returns a token for
  it (TokenRequest API); ``.kubeconfig_for(name, token=...)`` wraps any token in a kubeconfig.
- ``.request(method, path, body=None, *, user=None, token=None, content_type=None)`` ->
  ``ApiResponse(status, body)`` with ``.json()``: one verified HTTPS call (admin by default).
- ``.start_seconds``: how long the start took.

``k8s_namespace`` (function scope) -> ``str``: a fresh namespace per test. Namespaces are never
deleted (without kube-controller-manager they would stay Terminating anyway); the whole control
plane goes away at the end of the session.

No controllers run: Deployments get no ReplicaSets or Pods and nothing is garbage collected, so
assert intent, and PATCH ``.../status`` yourself where a test needs a status.

Binaries: ``$WSFLEET_K8S_BIN_DIR`` if set, else ``tools/k8s-controlplane/build.sh``'s cache
(built at collection time when missing, if any k8s test was collected). When they cannot be had
(no Go, build failure) the tests are SKIPPED with the reason, or FAIL when
``WSFLEET_REQUIRE_K8S=1`` (CI sets it, so CI cannot pass by skipping).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from tests.k8s.controlplane import ControlPlane, ControlPlaneError
from tests.k8s.harness import CRD_FILE, GROUP_PATH, WAIT, Operator, condition, get, ok

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE.parents[1] / "tools" / "k8s-controlplane" / "build.sh"
REQUIRE = os.environ.get("WSFLEET_REQUIRE_K8S") == "1"

#: Admission plugins on top of kube-apiserver's defaults, as a strict production API server has
#: them. OwnerReferencesPermissionEnforcement (on by default in OpenShift) refuses an owner
#: reference with blockOwnerDeletion unless its writer may update the owner's finalizers.
ADMISSION_ARGS = ("--enable-admission-plugins=OwnerReferencesPermissionEnforcement",)

_bin_dir_key = pytest.StashKey[Path | str]()  # the bin dir, or why there is none
_namespaces = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "k8s: runs against a real kube-apiserver + etcd (tests/k8s/conftest.py)"
    )


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE:
        pytest.fail(f"{reason} (WSFLEET_REQUIRE_K8S=1, so this fails instead of skipping)", False)
    pytest.skip(reason)


def _find_or_build(config: pytest.Config) -> Path | str:
    override = os.environ.get("WSFLEET_K8S_BIN_DIR")
    if override:
        missing = [n for n in ("kube-apiserver", "etcd") if not (Path(override) / n).is_file()]
        if missing:
            return f"WSFLEET_K8S_BIN_DIR={override} has no {' or '.join(missing)}"
        return Path(override)
    if not BUILD_SH.is_file():
        return f"{BUILD_SH} is missing"
    bin_dir = Path(
        subprocess.run(
            ["bash", str(BUILD_SH), "--bin-dir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    have = subprocess.run(["bash", str(BUILD_SH), "--check"], capture_output=True, check=False)
    if have.returncode == 0:  # every tool, kubectl and helm included
        return bin_dir
    reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "k8s tests: building kube-apiserver, etcd, kube-controller-manager, kube-scheduler, "
            "kubectl and helm (once per machine, several minutes); "
            "`make k8s-deps` does this ahead of time"
        )
    began = time.monotonic()
    build = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True, check=False)
    if build.returncode != 0:
        lines = build.stderr.strip().splitlines() or [f"exit code {build.returncode}"]
        if build.returncode == 2:  # Go missing or too old: its one sentence says so
            return lines[-1]
        return "building the k8s control plane failed: " + "\n".join(lines[-15:])
    if reporter is not None:
        reporter.write_line(f"k8s tests: built in {time.monotonic() - began:.0f} s")
    return bin_dir


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: build only for selected k8s tests
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # Build here, not in the fixture: collection has no per-test timeout, a first build does.
    if any(item.path.is_relative_to(HERE) for item in items):
        config.stash[_bin_dir_key] = _find_or_build(config)


@pytest.fixture(scope="session")
def kube_api(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A running control plane for the whole session (see the module docstring)."""
    found = request.config.stash.get(_bin_dir_key, None)
    if found is None:
        found = _find_or_build(request.config)
    if isinstance(found, str):
        _unavailable(found)
    plane = ControlPlane(found, extra_apiserver_args=ADMISSION_ARGS)
    try:
        plane.start()
    except ControlPlaneError as e:
        pytest.fail(f"the k8s control plane did not start: {e}", False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def k8s_namespace(kube_api: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A new, empty namespace for one test, named after it; returns its name."""
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{test or 'test'}-{next(_namespaces)}-{secrets.token_hex(3)}"
    resp = kube_api.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert resp.status == 201, f"creating namespace {name}: {resp.status} {resp.body!r}"
    return name


@pytest.fixture(scope="module")
def crd(kube_api: ControlPlane) -> dict[str, Any]:
    """The CRD from the chart, server-side applied and established."""
    name = "wsfleets.wsfleet.io"
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    ok(
        kube_api.request(
            "PATCH",
            path + "?fieldManager=wsfleet-tests&force=true",
            CRD_FILE.read_bytes(),
            content_type="application/apply-patch+yaml",
        ),
        200,
        201,
    )
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        served = kube_api.request("GET", GROUP_PATH)
        established = condition(get(kube_api, path), "Established").get("status") == "True"
        if established and served.status == 200:
            return dict(yaml.safe_load(CRD_FILE.read_text()))
        time.sleep(0.05)
    pytest.fail("the CRD was not established")


@pytest.fixture
def operator(
    kube_api: ControlPlane,
    k8s_namespace: str,
    crd: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Operator]:
    op = Operator(k8s_namespace, kube_api.kubeconfig, monkeypatch)
    op.start()
    try:
        yield op
    finally:
        if op.runner is not None:
            op.stop()
