"""The test cluster's network services in one process: the Service proxy (pods reach ClusterIPs
and the API server), the nginx ingress, and the load balancer on a host loopback port.

    python -m tests.k8s_e2e.network --api-url URL --token-file F --ca-file F \\
        --cluster-net NETNS --workdir DIR --lb-port PORT

Writes ``<workdir>/ready`` once all three serve.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.k8s_e2e.api import Api, Informer
from tests.k8s_e2e.ingress import Ingress
from tests.k8s_e2e.netns import GATEWAY
from tests.k8s_e2e.proxy import Forwarder, ServiceProxy

INGRESS_PORT = 80


async def main(args: argparse.Namespace) -> None:
    api = Api(args.api_url, Path(args.token_file).read_text().strip(), args.ca_file)
    url = urlsplit(args.api_url)
    workdir = Path(args.workdir)
    services = Informer(api, "/api/v1/services")
    slices = Informer(api, "/apis/discovery.k8s.io/v1/endpointslices")
    ingresses = Informer(api, "/apis/networking.k8s.io/v1/ingresses")
    proxy = ServiceProxy(
        args.cluster_net, (url.hostname or "127.0.0.1", url.port or 443), services, slices
    )
    ingress = Ingress(
        args.cluster_net,
        f"{GATEWAY}:{INGRESS_PORT}",
        workdir / "ingress",
        ingresses,
        services,
        slices,
    )
    lb = Forwarder(args.cluster_net, (GATEWAY, INGRESS_PORT))

    async def changed(kind: str, obj: dict) -> None:
        await proxy.sync()
        await ingress.sync()

    for informer in (services, slices, ingresses):
        informer.on_change = changed
    tasks = [asyncio.create_task(i.run()) for i in (services, slices, ingresses)]
    for informer in (services, slices, ingresses):
        await informer.synced.wait()
    await proxy.sync()
    await ingress.start()
    await lb.start(args.lb_port)
    (workdir / "ready").write_text("ok\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for t in tasks:
        t.cancel()
    await lb.close()
    await proxy.close()
    await ingress.close()
    await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.k8s_e2e.network")
    for flag in ("--api-url", "--token-file", "--ca-file", "--cluster-net", "--workdir"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--lb-port", type=int, required=True)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(main(parser.parse_args()))
