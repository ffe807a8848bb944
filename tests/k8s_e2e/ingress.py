"""The test cluster's ingress controller: Debian's nginx, configured from the Ingress objects and
the EndpointSlices of their backend Services, reloaded (SIGHUP) whenever they change.

nginx runs inside the cluster network namespace (it reaches pod IPs over the bridge) and listens
on the bridge address; :class:`tests.k8s_e2e.proxy.Forwarder` brings clients to it from a host
loopback port. The WebSocket timeouts come from the Ingress's
``nginx.ingress.kubernetes.io/proxy-{read,send,connect}-timeout`` annotations (seconds), as
ingress-nginx reads them, so the chart's values are what is exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

from tests.k8s_e2e.api import Informer, Obj
from tests.k8s_e2e.proxy import ready_endpoints

log = logging.getLogger("k8s_e2e.ingress")
ANNOTATION = "nginx.ingress.kubernetes.io/"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _timeout(annotations: dict[str, str], name: str, default: int) -> int:
    raw = annotations.get(ANNOTATION + name)
    return int(raw) if raw is not None and str(raw).isdigit() else default


def render(
    ingresses: dict[str, Obj],
    services: dict[str, Obj],
    slices: dict[str, Obj],
    workdir: Path,
    listen: str,
) -> str:
    upstreams: list[str] = []
    servers: dict[str, list[str]] = {}
    for ing in sorted(ingresses.values(), key=Informer.key):
        ns = ing["metadata"]["namespace"]
        notes = ing["metadata"].get("annotations") or {}
        read, send = (
            _timeout(notes, "proxy-read-timeout", 60),
            _timeout(notes, "proxy-send-timeout", 60),
        )
        connect = _timeout(notes, "proxy-connect-timeout", 5)
        for rule in ing["spec"].get("rules") or []:
            host = rule.get("host") or "_"
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = path["backend"]["service"]
                svc = services.get(f"{ns}/{backend['name']}")
                port_name = ""
                for p in (svc or {}).get("spec", {}).get("ports") or []:
                    if p.get("name") == backend["port"].get("name") or p.get("port") == backend[
                        "port"
                    ].get("number"):
                        port_name = p.get("name") or ""
                upstream = f"{ns}-{backend['name']}-{port_name or 'port'}"
                endpoints = ready_endpoints(slices, ns, backend["name"], port_name)
                lines = [f"    server {ip}:{port} max_fails=0;" for ip, port in endpoints]
                upstreams.append(
                    f"  upstream {upstream} {{\n"
                    + "\n".join(lines or ["    server 127.0.0.1:9 down;"])
                    + "\n  }"
                )
                servers.setdefault(host, []).append(
                    f"    location {path.get('path') or '/'} {{\n"
                    f"      proxy_pass http://{upstream};\n"
                    "      proxy_http_version 1.1;\n"
                    "      proxy_set_header Upgrade $http_upgrade;\n"
                    "      proxy_set_header Connection $connection_upgrade;\n"
                    "      proxy_set_header Host $host;\n"
                    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                    f"      proxy_connect_timeout {connect}s;\n"
                    f"      proxy_read_timeout {read}s;\n"
                    f"      proxy_send_timeout {send}s;\n"
                    "      proxy_next_upstream error timeout;\n"
                    "    }"
                )
    blocks = []
    for i, (host, locations) in enumerate(sorted(servers.items(), key=lambda kv: kv[0] != "_")):
        default = " default_server" if i == 0 else ""
        blocks.append(
            f"  server {{\n    listen {listen}{default};\n    server_name {host};\n"
            + "\n".join(locations)
            + "\n  }"
        )
    if not blocks:
        blocks.append(f"  server {{\n    listen {listen} default_server;\n    return 503;\n  }}")
    temp = "\n".join(
        f"  {kind}_temp_path {workdir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
# A reload starts new workers; the old ones keep their (WebSocket) connections until they end or
# this timeout, as ingress-nginx's default worker-shutdown-timeout (240s) does. A short one
# would cut every client at each endpoint change.
worker_shutdown_timeout 240s;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 4096; }}
http {{
  access_log {workdir}/access.log;
{temp}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
{chr(10).join(sorted(set(upstreams)))}
{chr(10).join(blocks)}
}}
"""


class Ingress:
    def __init__(
        self,
        cluster_net: str,
        listen: str,
        workdir: Path,
        ingresses: Informer,
        services: Informer,
        slices: Informer,
    ) -> None:
        self.cluster_net = cluster_net
        self.listen = listen
        self.workdir = workdir
        self.ingresses, self.services, self.slices = ingresses, services, slices
        self.conf = workdir / "nginx.conf"
        self.proc: asyncio.subprocess.Process | None = None
        self._text = ""
        self.reloads = 0

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._text = render(
            self.ingresses.items, self.services.items, self.slices.items, self.workdir, self.listen
        )
        self.conf.write_text(self._text)
        log_file = open(self.workdir / "nginx.out", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                "ip",
                "netns",
                "exec",
                self.cluster_net,
                NGINX,
                "-p",
                str(self.workdir),
                "-e",
                str(self.workdir / "error.log"),
                "-c",
                str(self.conf),
                "-g",
                "daemon off;",
                stdout=log_file,
                stderr=log_file,
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            log_file.close()

    async def sync(self, _kind: str = "", _obj: Obj | None = None) -> None:
        text = render(
            self.ingresses.items, self.services.items, self.slices.items, self.workdir, self.listen
        )
        if text == self._text or self.proc is None:
            return
        self._text = text
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.conf)
        self.proc.send_signal(signal.SIGHUP)  # nginx reloads; old workers finish their connections
        self.reloads += 1
        (self.workdir / "reloads").write_text(str(self.reloads))
        log.info("nginx reloaded (%d)", self.reloads)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
