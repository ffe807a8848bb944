"""A whole test Kubernetes cluster on one machine, for the end-to-end tests:

- etcd + kube-apiserver (:class:`tests.k8s.controlplane.ControlPlane`),
- kube-controller-manager and kube-scheduler (built by ``tools/k8s-controlplane/build.sh``), so
  Deployments, ReplicaSets, EndpointSlices, garbage collection and PDB status are Kubernetes' own,
- ``nodes`` test kubelets (:mod:`tests.k8s_e2e.kubelet`), each a process running pods as processes,
- the network process (:mod:`tests.k8s_e2e.network`): Service proxy, nginx ingress, and a load
  balancer on ``127.0.0.1:<lb_port>`` that clients connect to.

Everything runs as separate processes, stopped by pid; the network namespaces all start with
``prefix`` and are deleted at the end. Needs root, iproute2 and nginx.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.chart.k8s_tools import tool
from tests.k8s.controlplane import (
    ControlPlane,
    ControlPlaneError,
    _die_with_parent,
    _tail,
    free_port,
)
from tests.k8s_e2e import netns

REPO = Path(__file__).resolve().parents[2]


@dataclass
class _Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Cluster:
    nodes: int = 2
    backoff: float = 1.0
    plane: ControlPlane = field(init=False)
    workdir: Path = field(init=False)
    prefix: str = field(init=False)
    lb_port: int = field(init=False, default=0)
    children: list[_Child] = field(init=False, default_factory=list)

    @property
    def cluster_net(self) -> str:
        return f"{self.prefix}-net"

    @property
    def node_names(self) -> list[str]:
        return [f"node-{i}" for i in range(1, self.nodes + 1)]

    def start(self) -> None:
        self.prefix = f"wsfe2e{os.getpid()}"  # netns names: <prefix>-net, <prefix>-n<node>p<slot>
        self.workdir = Path(tempfile.mkdtemp(prefix="wsfleet-e2e-"))
        bin_dir = tool("kube-apiserver").parent
        self.plane = ControlPlane(bin_dir, workdir=self.workdir / "plane")
        try:
            self.plane.start()
            token = self.workdir / "admin.token"
            token.write_text(self.plane.admin_token)
            token.chmod(0o600)
            self._controllers(bin_dir)
            netns.delete_orphans("wsfe2e")
            netns.create_cluster_network(self.cluster_net)
            api = [
                "--api-url",
                self.plane.url,
                "--token-file",
                str(token),
                "--ca-file",
                str(self.plane.ca_file),
            ]
            self.lb_port = free_port()
            self._spawn(
                "network",
                [
                    sys.executable,
                    "-m",
                    "tests.k8s_e2e.network",
                    *api,
                    "--cluster-net",
                    self.cluster_net,
                    "--workdir",
                    str(self.workdir / "network"),
                    "--lb-port",
                    str(self.lb_port),
                ],
            )
            for i, name in enumerate(self.node_names, start=1):
                self._spawn(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "tests.k8s_e2e.kubelet",
                        *api,
                        "--node",
                        name,
                        "--index",
                        str(i),
                        "--cluster-net",
                        self.cluster_net,
                        "--state-dir",
                        str(self.workdir / name),
                        "--backoff",
                        str(self.backoff),
                    ],
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _controllers(self, bin_dir: Path) -> None:
        kubeconfig = str(self.plane.kubeconfig)
        sa_key = self.plane.workdir / "sa.key"  # type: ignore[operator]
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--controllers=*",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self.plane.ca_file}",
                "--cluster-name=wsfleet-e2e",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                preexec_fn=_die_with_parent,
            )
        self.children.append(_Child(name, popen, log))

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for child in self.children:
                if child.popen.poll() is not None:
                    raise ControlPlaneError(f"{child.name} exited: {_tail(child.log)}")
            nodes = self.plane.request("GET", "/api/v1/nodes").json()["items"]
            ready = {
                n["metadata"]["name"]
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"].get("conditions", [])
                )
                and not any(
                    t["key"].startswith("node.kubernetes.io/")
                    for t in n["spec"].get("taints") or []
                )
            }
            network = (self.workdir / "network" / "ready").exists()
            if network and ready >= set(self.node_names):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"cluster not ready: nodes {sorted(ready)}, network {network}"
                )
            time.sleep(0.2)

    def logs(self, name: str, lines: int = 40) -> str:
        return _tail(self.workdir / f"{name}.log", lines)

    def stop(self) -> None:
        for child in reversed(self.children):  # kubelets first: they stop their pods
            child.stop(30 if child.name.startswith("node-") else 10)
        self.children.clear()
        with contextlib.suppress(Exception):
            netns.delete_all(self.prefix)
        with contextlib.suppress(Exception):
            self.plane.stop()
        if os.environ.get("WSFLEET_E2E_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}

    def run(self, name: str, *args: str, timeout: float = 60) -> str:
        """Run kubectl or helm against the cluster; returns stdout, fails with stderr."""
        proc = subprocess.run(
            [str(tool(name)), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"{name} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def container_pid(self, namespace: str, pod: str, container: str) -> int:
        for node in self.node_names:
            path = self.workdir / node / "pods" / f"{namespace}_{pod}" / f"{container}.pid"
            if path.exists():
                return int(path.read_text())
        raise LookupError(f"no process for {namespace}/{pod}/{container}")


def main() -> None:
    """``python -m tests.k8s_e2e.cluster``: a cluster until Ctrl-C (see docs/kubernetes.md)."""
    import signal

    cluster = Cluster()
    cluster.start()
    print(f"export KUBECONFIG={cluster.plane.kubeconfig}")
    print(f"load balancer (to nginx, the ingress): 127.0.0.1:{cluster.lb_port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
