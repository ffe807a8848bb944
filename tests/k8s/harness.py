"""Helpers and fixtures for the tests that run the operator against the real API server:
HTTP helpers, polling, WsFleet builders, the CRD fixture and the operator in a thread."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from tests.chart.k8s_tools import ToolMissing, tool
from tests.k8s.controlplane import ControlPlane, free_port
from tests.redis_procs import RedisProcess

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "helm" / "wsfleet" / "crds" / "wsfleets.wsfleet.io.yaml"
RBAC_FILE = ROOT / "operator" / "rbac.yaml"
GROUP_PATH = "/apis/wsfleet.io/v1alpha1"
SELECTOR = "app.kubernetes.io/name=wsfleet,app.kubernetes.io/instance={}"
RedisFactory = Callable[[], Awaitable[RedisProcess]]
WAIT = 15.0


# ---------------------------------------------------------------------------------------------
# helpers


def ok(resp: Any, *statuses: int) -> Any:
    assert resp.status in (statuses or (200, 201)), f"HTTP {resp.status}: {resp.body[:800]!r}"
    return resp.json()


async def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"{what}: not reached within {timeout} s (last: {last!r})")


def fleet_path(ns: str, name: str = "", sub: str = "") -> str:
    path = f"{GROUP_PATH}/namespaces/{ns}/wsfleets"
    return f"{path}/{name}{sub}" if name else path


def get(api: ControlPlane, path: str) -> dict[str, Any] | None:
    resp = api.request("GET", path)
    return None if resp.status == 404 else ok(resp, 200)


def merge_patch(api: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return ok(api.request("PATCH", path, body, content_type="application/merge-patch+json"), 200)


def create_fleet(api: ControlPlane, ns: str, spec: dict[str, Any], name: str = "chat") -> Any:
    body = {
        "apiVersion": "wsfleet.io/v1alpha1",
        "kind": "WsFleet",
        "metadata": {"name": name},
        "spec": spec,
    }
    return ok(api.request("POST", fleet_path(ns), body), 201)


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == ctype:
            return dict(cond)
    return {}


def redis_node(r: RedisProcess, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": r.port, **extra}


def kubectl_binary() -> str:
    """The kubectl built by tools/k8s-controlplane/build.sh (never one found on PATH, never a
    skip): fails with one sentence when missing."""
    try:
        return str(tool("kubectl"))
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def kubectl(api: ControlPlane, *args: str, user: str | None = None) -> str:
    run = subprocess.run(
        [kubectl_binary(), *args], env=api.env(user), capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, f"kubectl {' '.join(args)}: {run.stderr}"
    return run.stdout


async def fleet_when(
    api: ControlPlane, ns: str, check: Callable[[dict[str, Any]], Any], what: str
) -> dict[str, Any]:
    """Poll WsFleet ``chat`` until ``check(fleet)`` is truthy; return that fleet."""
    fleet: dict[str, Any] = await eventually(
        lambda: (f := get(api, fleet_path(ns, "chat"))) and check(f) and f, what
    )
    return fleet


def fleet_events(api: ControlPlane, ns: str, name: str = "chat") -> list[dict[str, Any]]:
    """The Events about WsFleet ``name``, oldest first."""
    path = f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3D{name}"
    items = ok(api.request("GET", path), 200).get("items") or []
    return [e for e in items if (e.get("involvedObject") or {}).get("kind") == "WsFleet"]


def assert_no_permission_errors(operator_output: str) -> None:
    """The operator's log shows no request the API server refused for lack of rights."""
    # (not a bare "403": the log's timestamps have milliseconds)
    for sign in ("Forbidden", "forbidden", "Not enough permissions", "HTTP 403", "status=403"):
        assert sign not in operator_output, operator_output


# ---------------------------------------------------------------------------------------------
# the operator in a thread


class Operator:
    """``kopf run --standalone --namespace <ns> -m wsfleet_operator`` in a thread."""

    def __init__(self, ns: str, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ns = ns
        self.kubeconfig = kubeconfig
        self.monkeypatch = monkeypatch
        self.liveness_port = free_port()
        self.runner: KopfRunner | None = None
        self.outputs: list[str] = []

    def start(self) -> None:
        self.monkeypatch.setenv("KUBECONFIG", str(self.kubeconfig))
        self.monkeypatch.setenv("WSFLEET_OPERATOR_STATUS_INTERVAL", "0.5")
        self.monkeypatch.setenv("WSFLEET_OPERATOR_METRICS_PORT", "0")
        self.monkeypatch.setenv("WSFLEET_OPERATOR_REDIS_TIMEOUT", "0.5")
        args = [
            "run",
            "--standalone",
            "--namespace",
            self.ns,
            f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
            "-m",
            "wsfleet_operator",
        ]
        self.runner = KopfRunner(args, timeout=30)
        self.runner.__enter__()

    def stop(self) -> str:
        """Stop the operator (fails the test if it does not stop within 30 s); its output."""
        runner, self.runner = self.runner, None
        assert runner is not None
        began = time.monotonic()
        runner.__exit__(None, None, None)
        self.stop_seconds = time.monotonic() - began
        assert runner.exit_code == 0, runner.output
        self.outputs.append(runner.output)
        # kopf ends its thread's event loop right after closing its HTTPS sessions, before their
        # TLS close completes; the sockets then wait for the GC. A real operator is a process that
        # exits, so collect them now, quietly, instead of in whichever test the GC next runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        return runner.output

    def healthz(self) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return dict(json.loads(resp.read())) if resp.status == 200 else None
        except urllib.error.HTTPError as e:
            e.close()  # it holds the connection
            return None
        except OSError:
            return None
