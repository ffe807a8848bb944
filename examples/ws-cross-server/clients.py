"""50 clients spread over the five servers; 10 of them join rooms 1000-1002.

Run:  python clients.py [--base-port 9000] [--ports 9000,9001,...] [--run-for SECONDS]
Prints one line per received ``say`` event: ``[Client <id>,port:<port>] Received say event: {...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from typing import Any

from wsfleet.client import Connector

TOTAL = 50
JOINERS = 10
ROOMS = ["1000", "1001", "1002"]


async def main(ports: list[int], run_for: float | None, seed: int | None) -> None:
    rng = random.Random(seed)
    joiners = set(rng.sample(range(1, TOTAL + 1), JOINERS))
    clients: list[Connector] = []
    for i in range(TOTAL):
        port, client_id = ports[i % len(ports)], i + 1
        client = Connector(f"ws://localhost:{port}", custom_params={"id": client_id})
        tag = f"[Client {client_id},port:{port}]"

        def opened(client: Connector = client, client_id: int = client_id, tag: str = tag) -> None:
            print(f"{tag} Connect success", flush=True)
            if client_id in joiners:
                room = rng.choice(ROOMS)

                def joined(err: Any, data: Any) -> None:
                    print(f"{tag} Received joinRoom callback response:", err or data, flush=True)

                client.emit("joinRoom", {"roomId": room}, joined)

        client.on("open", opened)
        client.on_event(
            "say", lambda data, tag=tag: print(f"{tag} Received say event:", data, flush=True)
        )
        clients.append(client)
        await client.connect()
    try:
        await asyncio.sleep(run_for if run_for is not None else 1e9)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", default="9000,9001,9002,9003,9004")
    parser.add_argument("--run-for", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(main([int(p) for p in args.ports.split(",")], args.run_for, args.seed))
