"""Container probes of the test kubelet (httpGet and tcpSocket), made from the cluster network
namespace to the pod IP, as a kubelet on the node would."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.k8s_e2e.netns import socket_in


async def connect(
    netns: str, host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket_in(netns)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    if str(port).isdigit():
        return int(port)
    raise ValueError(f"container {container['name']} has no port named {port!r}")


async def run_probe(
    probe: dict[str, Any], container: dict[str, Any], netns: str, pod_ip: str
) -> bool:
    """One probe attempt: True on success."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = resolve_port(get["port"], container)
            reader, writer = await connect(netns, get.get("host") or pod_ip, port, timeout)
            try:
                async with asyncio.timeout(timeout):
                    path = get.get("path", "/")
                    writer.write(
                        f"GET {path} HTTP/1.1\r\nHost: {pod_ip}:{port}\r\n"
                        "User-Agent: kube-probe/test\r\nConnection: close\r\n\r\n".encode()
                    )
                    await writer.drain()
                    status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            parts = status_line.split()
            return len(parts) >= 2 and 200 <= int(parts[1]) < 400
        if "tcpSocket" in probe:
            port = resolve_port(probe["tcpSocket"]["port"], container)
            _, writer = await connect(netns, pod_ip, port, timeout)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return True
    except (OSError, TimeoutError, ValueError, IndexError):
        return False
    return True  # exec/grpc probes are not run by the test kubelet: treated as passing
