"""The original README's cross-server example, ported: a node that only talks to other nodes.

Run:  python cserver.py [--name serverA] [--redis 127.0.0.1:6379[,127.0.0.1:6380]]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.server import Server


def fleet(name: str, redis: str) -> FleetSettings:
    nodes = tuple(RedisNode.parse(address) for address in redis.split(","))
    return FleetSettings(redis=nodes, server_name=name)


async def main(name: str, redis: str) -> None:
    print(f"Using configured values - serverName: {name}", flush=True)
    server = Server(fleet=fleet(name, redis))
    server.on_redis_health_change(
        lambda healthy, info: print(f"Node health status changed:{healthy}", info, flush=True)
    )

    @server.on_cross_server_event("say")
    def say(data: dict[str, Any], reply: Any) -> None:
        # the message is data["payload"]; data is the whole envelope, as in the original
        print('Received "say" event from another server:', data, flush=True)
        if reply is not None:
            reply({"msg": f"Hi, this is server {server.server_name} responding to you"})

    await server.startup()  # no WebSocket port: a cross-server-only node
    print(f"{name} ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="serverA")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    asyncio.run(main(args.name, args.redis))
