"""The test cluster's Service proxy (a userspace kube-proxy) and the load balancer in front of
the ingress.

- Every ClusterIP Service port gets a listener on ``<clusterIP>:<port>`` inside the cluster network
  namespace (the Service range is routed to its ``lo``). A connection goes to a ready endpoint of
  the Service's EndpointSlices (round robin), made from the same namespace. ``default/kubernetes``
  goes to the real API server on the host's loopback: that is how pods reach the API.
- :class:`Forwarder` listens on a host loopback port and forwards each connection to an address in
  the cluster network (the ingress), as a cloud load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from typing import Any

from tests.k8s_e2e.api import Informer, Obj
from tests.k8s_e2e.netns import socket_in

log = logging.getLogger("k8s_e2e.proxy")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    try:
        await asyncio.gather(pipe(client[0], upstream[1]), pipe(upstream[0], client[1]))
    finally:
        for w in (client[1], upstream[1]):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()


async def open_in(
    netns: str | None, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if netns is None:
        return await asyncio.open_connection(host, port)
    sock = socket_in(netns)
    try:
        async with asyncio.timeout(5):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def listen_in(netns: str | None, host: str, port: int, handler: Any) -> asyncio.Server:
    if netns is None:
        return await asyncio.start_server(handler, host, port)
    sock = socket_in(netns)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return await asyncio.start_server(handler, sock=sock)


def ready_endpoints(
    slices: dict[str, Obj], namespace: str, service: str, port_name: str
) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for s in slices.values():
        meta = s["metadata"]
        if (
            meta["namespace"] != namespace
            or (meta.get("labels") or {}).get("kubernetes.io/service-name") != service
        ):
            continue
        ports = [p for p in s.get("ports") or [] if (p.get("name") or "") == port_name]
        if not ports:
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") and ep.get("addresses"):
                out.append((ep["addresses"][0], int(ports[0]["port"])))
    return sorted(out)


class ServiceProxy:
    def __init__(
        self, cluster_net: str, apiserver: tuple[str, int], services: Informer, slices: Informer
    ) -> None:
        self.cluster_net = cluster_net
        self.apiserver = apiserver
        self.services = services
        self.slices = slices
        self._listeners: dict[tuple[str, int], tuple[str, asyncio.Server]] = {}
        self._rr = itertools.count()
        self._conns: set[asyncio.Task[None]] = set()

    async def sync(self, _kind: str = "", _obj: Obj | None = None) -> None:
        wanted: dict[tuple[str, int], str] = {}
        for key, svc in self.services.items.items():
            ip = svc["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            for p in svc["spec"].get("ports") or []:
                if p.get("protocol", "TCP") == "TCP":
                    wanted[(ip, int(p["port"]))] = f"{key}/{p.get('name') or ''}"
        for addr in list(self._listeners):
            if wanted.get(addr) != self._listeners[addr][0]:
                _, server = self._listeners.pop(addr)
                server.close()
        for addr, target in wanted.items():
            if addr not in self._listeners:
                try:
                    server = await listen_in(
                        self.cluster_net, addr[0], addr[1], self._handler(target)
                    )
                except OSError as exc:
                    log.warning("cannot listen on %s:%s for %s: %s", *addr, target, exc)
                    continue
                self._listeners[addr] = (target, server)

    def _handler(self, target: str) -> Any:
        namespace, name, port_name = target.split("/")

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._conns.add(task)
            try:
                if (namespace, name) == ("default", "kubernetes"):
                    upstream = await open_in(None, *self.apiserver)
                else:
                    endpoints = ready_endpoints(self.slices.items, namespace, name, port_name)
                    if not endpoints:
                        writer.close()
                        return
                    host, port = endpoints[next(self._rr) % len(endpoints)]
                    upstream = await open_in(self.cluster_net, host, port)
                await splice((reader, writer), upstream)
            except (OSError, TimeoutError):
                writer.close()
            finally:
                self._conns.discard(task)

        return handle

    async def close(self) -> None:
        for _, server in self._listeners.values():
            server.close()
        for task in list(self._conns):
            task.cancel()


class Forwarder:
    """127.0.0.1:<port> on the host -> ``target`` in the cluster network."""

    def __init__(self, cluster_net: str, target: tuple[str, int]) -> None:
        self.cluster_net = cluster_net
        self.target = target
        self.server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            upstream = await open_in(self.cluster_net, *self.target)
            await splice((reader, writer), upstream)
        except (OSError, TimeoutError):
            writer.close()
        finally:
            self._conns.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._conns):
            task.cancel()
