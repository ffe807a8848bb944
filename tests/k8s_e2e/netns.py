"""Network namespaces for the end-to-end cluster (test infrastructure; needs root and iproute2).

Layout (every name starts with the run's prefix, so a run deletes exactly what it made):

- ``<prefix>-net``: the cluster network. A bridge ``br0`` with 10.244.0.1/16 joins the pods;
  the Service range 10.0.0.0/24 is routed to ``lo`` (AnyIP), where the service proxy listens on
  each ClusterIP. It has no route anywhere else: nothing in it can reach an outside address.
- ``<prefix>-<n>``: one per pod, with ``eth0`` (a veth whose peer is on the bridge), the pod IP
  and a default route through the bridge.

The host side never gets an interface or a route: processes on the host reach the cluster only
through sockets created inside these namespaces (:func:`socket_in`), by the test's own proxies.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
BRIDGE = "br0"
GATEWAY = "10.244.0.1"
POD_PREFIX_LEN = 16
SERVICE_RANGE = "10.0.0.0/24"

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    pass


def ip(*args: str, netns: str | None = None) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    if run.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: {run.stderr.strip()}")
    return run.stdout


def setns(name: str | None) -> None:
    """Move the calling thread into network namespace ``name`` (None: the host's, pid 1's)."""
    path = "/proc/1/ns/net" if name is None else str(NETNS_DIR / name)
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def socket_in(
    name: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A socket that lives in network namespace ``name`` (made by a short-lived thread that
    enters it: a socket keeps the namespace it was created in)."""
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            setns(name)
            result.append(socket.socket(family, kind))
        except BaseException as exc:  # handed to the caller
            result.append(exc)

    thread = threading.Thread(target=make, name=f"netns-{name}")
    thread.start()
    thread.join()
    (made,) = result
    if isinstance(made, BaseException):
        raise made
    made.setblocking(False)
    return made


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create_cluster_network(name: str) -> None:
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)
    ip("link", "add", BRIDGE, "type", "bridge", netns=name)
    ip("addr", "add", f"{GATEWAY}/{POD_PREFIX_LEN}", "dev", BRIDGE, netns=name)
    ip("link", "set", BRIDGE, "up", netns=name)
    ip("route", "add", "local", SERVICE_RANGE, "dev", "lo", netns=name)


def create_pod_network(name: str, cluster_net: str, pod_ip: str, host_veth: str) -> None:
    """A pod namespace ``name`` whose eth0 has ``pod_ip``, plugged into the cluster bridge."""
    ip("netns", "add", name)
    try:
        ip("link", "set", "lo", "up", netns=name)
        ip(
            "link",
            "add",
            "eth0",
            "netns",
            name,
            "type",
            "veth",
            "peer",
            "name",
            host_veth,
            "netns",
            cluster_net,
        )
        ip("link", "set", host_veth, "master", BRIDGE, "up", netns=cluster_net)
        ip("addr", "add", f"{pod_ip}/{POD_PREFIX_LEN}", "dev", "eth0", netns=name)
        ip("link", "set", "eth0", "up", netns=name)
        ip("route", "add", "default", "via", GATEWAY, netns=name)
    except NetnsError:
        delete(name)
        raise


def delete(name: str) -> None:
    """Delete a namespace (its veth goes with it); missing is fine."""
    if exists(name):
        subprocess.run(
            ["ip", "netns", "delete", name], capture_output=True, timeout=20, check=False
        )


def delete_orphans(stem: str) -> None:
    """Delete namespaces ``<stem><pid>-...`` left by runs whose process ``pid`` is gone."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        pid = entry.name.removeprefix(stem).split("-", 1)[0]
        if entry.name.startswith(stem) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            delete(entry.name)


def delete_all(prefix: str) -> None:
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            if entry.name.startswith(prefix):
                delete(entry.name)
