"""A real Kubernetes control plane for tests: etcd and kube-apiserver on free loopback ports.

Modelled on controller-runtime's envtest (``pkg/internal/testing/controlplane``), with token
authentication instead of client certificates:

- etcd keeps its data in a temporary directory, listens on 127.0.0.1 only, and skips fsync.
- kube-apiserver binds to 127.0.0.1, generates a self-signed serving certificate (and the CA that
  signs it) into ``--cert-dir``, authenticates bearer tokens from a static token file, authorizes
  with RBAC only, and signs service-account tokens with a key made here (so the TokenRequest API,
  ``kubectl create token``, works).
- No controller-manager, scheduler or kubelet: Deployments get no Pods, namespaces never finish
  deleting and nothing is garbage collected. Test intent (specs, ConfigMaps, owner references,
  status written by the test itself), not the behaviour of controllers.

The binaries come from ``tools/k8s-controlplane/build.sh``. To run one by hand::

    .venv/bin/python -m tests.k8s.controlplane "$(tools/k8s-controlplane/build.sh --bin-dir)"

which prints the kubeconfig path and serves until Ctrl-C.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_USER = "admin"
#: Users in the static token file. ``admin`` is in ``system:masters`` (all rights, no RBAC
#: needed); the others are in no group, so they can do nothing but what a test binds to them.
DEFAULT_USERS: Mapping[str, Sequence[str]] = {
    ADMIN_USER: ("system:masters",),
    "wsfleet-operator": (),
    "wsfleet-user": (),
}
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    """The control plane did not start; the message ends with the tail of the process logs."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Have Linux kill the child if the test process dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} is missing)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM this process (by pid), wait up to ``grace`` seconds, then SIGKILL it."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback. ``start()``, use ``url``/``kubeconfig``, ``stop()``.

    Also a context manager. ``users`` maps user name -> groups for the static token file (it is
    read once at start, so every user must be named up front; for users made later, use
    ``service_account_token``).
    """

    bin_dir: Path
    users: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_USERS))
    workdir: Path | None = None
    start_timeout: float = 90.0
    #: Appended to kube-apiserver's flags (a later flag overrides an earlier one).
    extra_apiserver_args: Sequence[str] = ()

    url: str = field(init=False, default="")
    kubeconfig: Path = field(init=False)
    ca_file: Path = field(init=False)
    tokens: dict[str, str] = field(init=False, default_factory=dict)
    start_seconds: float = field(init=False, default=0.0)
    _procs: list[_Proc] = field(init=False, default_factory=list)
    _own_workdir: bool = field(init=False, default=False)
    _ssl: ssl.SSLContext | None = field(init=False, default=None)

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if ADMIN_USER not in self.users:
            raise ValueError(f"users must include {ADMIN_USER!r} (the fixtures' admin)")
        for exe in ("etcd", "kube-apiserver"):
            if not os.access(self.bin_dir / exe, os.X_OK):
                raise ControlPlaneError(f"{self.bin_dir / exe} is missing or not executable")
        began = time.monotonic()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="wsfleet-k8s-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_tokens()
            self._make_service_account_key()
            # Free ports are picked, then bound by the child: another process may take one in
            # between, so a start that fails on a port retries with fresh ones (bounded).
            for attempt in range(3):
                try:
                    self._start_processes(time.monotonic() + self.start_timeout)
                    break
                except ControlPlaneError as e:
                    self._stop_processes()
                    if attempt == 2 or "address already in use" not in str(e):
                        raise
            self._write_kubeconfig(self.kubeconfig, self.tokens[ADMIN_USER])
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (each by pid: SIGTERM, then SIGKILL), and delete the
        work directory if this object made it."""
        self._stop_processes()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        for proc in reversed(self._procs):
            proc.stop()
        self._procs.clear()

    # ---- setup steps -----------------------------------------------------------------------

    def _write_tokens(self) -> None:
        assert self.workdir is not None
        rows = []
        for user, groups in self.users.items():
            token = self.tokens.setdefault(user, secrets.token_hex(24))
            rows.append(f'{token},{user},{user},"{",".join(groups)}"')
        (self.workdir / "tokens.csv").write_text("\n".join(rows) + "\n")
        (self.workdir / "tokens.csv").chmod(0o600)

    def _make_service_account_key(self) -> None:
        assert self.workdir is not None
        if shutil.which("openssl") is None:
            raise ControlPlaneError(
                "openssl is needed to make the service-account signing key: apt-get install openssl"
            )
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        for args in (
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
            ["pkey", "-in", key, "-pubout", "-out", pub],
        ):
            run = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
            if run.returncode != 0:
                raise ControlPlaneError(f"openssl {args[0]} failed: {run.stderr.decode()}")

    def _spawn(self, name: str, args: Sequence[str]) -> _Proc:
        assert self.workdir is not None
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        proc = _Proc(name, popen, log)
        self._procs.append(proc)
        return proc

    def _fail(self, proc: _Proc, why: str) -> ControlPlaneError:
        return ControlPlaneError(f"{proc.name} {why}; last lines of {proc.log}:\n{_tail(proc.log)}")

    def _start_processes(self, deadline: float) -> None:
        assert self.workdir is not None
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd_dir = self.workdir / "etcd"
        shutil.rmtree(etcd_dir, ignore_errors=True)
        etcd = self._spawn(
            "etcd",
            [
                "--name=wsfleet-test",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=wsfleet-test={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(etcd, deadline, lambda: _http_ok(f"{etcd_url}/health", b'"health":"true"'))

        self.url = f"https://127.0.0.1:{api_port}"
        cert_dir = self.workdir / "certs"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # The "kubernetes" Service's endpoints may not be loopback; nothing here uses it.
                "--endpoint-reconciler-type=none",
                f"--secure-port={api_port}",
                f"--cert-dir={cert_dir}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                f"--service-account-issuer={self.url}/",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                "--allow-privileged=true",
                # No controller-manager creates ServiceAccount tokens or "default" accounts.
                "--disable-admission-plugins=ServiceAccount",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        admin = self.tokens[ADMIN_USER]
        self._wait(
            apiserver,
            deadline,
            lambda: _http_ok(f"{self.url}/readyz", b"ok", token=admin, context=insecure),
        )
        self.ca_file = self.workdir / "ca.crt"
        self.ca_file.write_text(_last_pem_certificate(cert_dir / "apiserver.crt"))
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        self.kubeconfig = self.workdir / "kubeconfig"

    def _wait(self, proc: _Proc, deadline: float, ready: Any) -> None:
        delay = 0.05
        while True:
            if not proc.alive():
                log = _tail(proc.log)
                if "address already in use" in log:
                    raise self._fail(proc, "could not bind (address already in use)")
                raise self._fail(proc, f"exited with code {proc.popen.returncode}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise self._fail(proc, f"was not ready within {self.start_timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _write_kubeconfig(self, path: Path, token: str, user: str = ADMIN_USER) -> None:
        # JSON is YAML: kubectl, the kubernetes client and kopf all read this.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "wsfleet-test",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": f"{user}@wsfleet-test",
                    "context": {"cluster": "wsfleet-test", "user": user, "namespace": "default"},
                }
            ],
            "current-context": f"{user}@wsfleet-test",
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)

    # ---- helpers for tests -----------------------------------------------------------------

    @property
    def admin_token(self) -> str:
        return self.tokens[ADMIN_USER]

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Trusts exactly the API server's CA (for urllib, aiohttp, ...)."""
        assert self._ssl is not None, "start() first"
        return self._ssl

    def user_token(self, user: str) -> str:
        """The bearer token of a user from the static token file."""
        try:
            return self.tokens[user]
        except KeyError:
            raise KeyError(
                f"no static user {user!r}: the token file has {sorted(self.tokens)}; pass "
                "users=... to ControlPlane, or use service_account_token()"
            ) from None

    def kubeconfig_for(
        self, user: str, path: Path | None = None, *, token: str | None = None
    ) -> Path:
        """Write a kubeconfig that authenticates as ``user`` (a static user, or any name when
        ``token`` is given, e.g. a service-account token) and return its path."""
        assert self.workdir is not None
        path = path or self.workdir / f"kubeconfig-{user.replace(':', '_')}"
        self._write_kubeconfig(path, token or self.user_token(user), user)
        return path

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """Create ServiceAccount ``namespace/name`` if needed and return a token for it from the
        TokenRequest API; it authenticates as ``system:serviceaccount:<namespace>:<name>``."""
        created = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        )
        if created.status not in (201, 409):
            raise ControlPlaneError(f"creating ServiceAccount: {created.status} {created.body!r}")
        resp = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        if resp.status != 201:
            raise ControlPlaneError(f"TokenRequest: {resp.status} {resp.body!r}")
        return str(resp.json()["status"]["token"])

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        user: str | None = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> ApiResponse:
        """One HTTPS request to the API server, verified against its CA. Authenticates as the
        admin unless ``user`` (a static user) or ``token`` is given. A dict/list ``body`` is sent
        as JSON (``content_type`` defaults to application/json; use
        ``application/merge-patch+json`` etc. for PATCH). Never raises on HTTP errors."""
        if token is None:
            token = self.user_token(user or ADMIN_USER)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type or "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:
                return ApiResponse(resp.status, resp.read())
        except urllib.error.HTTPError as e:
            with e:  # it holds the connection: close it now, not whenever the GC finds the cycle
                return ApiResponse(e.code, e.read())

    def env(self, user: str | None = None) -> dict[str, str]:
        """``os.environ`` plus KUBECONFIG for the admin (or a static ``user``), for subprocesses
        such as kubectl or a kopf operator."""
        path = self.kubeconfig if user is None else self.kubeconfig_for(user)
        return {**os.environ, "KUBECONFIG": str(path)}


def _http_ok(
    url: str, expect: bytes, *, token: str | None = None, context: ssl.SSLContext | None = None
) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return resp.status == 200 and expect in resp.read()
    except urllib.error.HTTPError as e:
        e.close()  # it holds the connection
        return False
    except OSError:
        return False


def _last_pem_certificate(bundle: Path) -> str:
    """kube-apiserver writes its self-signed serving certificate followed by the CA that signed
    it; the CA (the last block) is what clients trust."""
    begin = "-----BEGIN CERTIFICATE-----"
    blocks = [begin + part for part in bundle.read_text().split(begin)[1:]]
    if not blocks:
        raise ControlPlaneError(f"no certificate in {bundle}")
    block = blocks[-1].strip() + "\n"
    base64.b64decode("".join(block.splitlines()[1:-1]), validate=True)  # a well-formed block
    return block


@contextlib.contextmanager
def running(bin_dir: Path, **kwargs: Any) -> Iterator[ControlPlane]:
    with ControlPlane(bin_dir, **kwargs) as plane:
        yield plane


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.k8s.controlplane BIN_DIR", file=sys.stderr)
        return 2
    with running(Path(argv[0])) as plane:
        print(f"API server: {plane.url} (up in {plane.start_seconds:.1f} s)")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        for user, token in plane.tokens.items():
            print(f"token for {user}: {token}")
        print("Ctrl-C stops it.", flush=True)
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
