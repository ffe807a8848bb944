"""Entry point of the test kubelet (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from tests.k8s_e2e.api import Api
from tests.k8s_e2e.kubelet.kubelet import Kubelet


async def main(args: argparse.Namespace) -> None:
    api = Api(args.api_url, Path(args.token_file).read_text().strip(), args.ca_file)
    kubelet = Kubelet(
        api,
        name=args.node,
        index=args.index,
        cluster_net=args.cluster_net,
        prefix=args.cluster_net.removesuffix("-net"),
        state_dir=Path(args.state_dir),
        ca_pem=Path(args.ca_file).read_bytes(),
        backoff=args.backoff,
    )
    task = asyncio.create_task(kubelet.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    task.cancel()  # Kubelet.run stops every pod on the way out
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.k8s_e2e.kubelet")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--cluster-net", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--backoff", type=float, default=10.0, help="first crash back-off, s")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(main(parser.parse_args()))
