"""The original README's sender: a broadcast, a call with a callback, a call awaited.

Run:  python sender.py [--name senderA] [--redis 127.0.0.1:6379] [--scale 1.0]
It sends after 3 s, 6 s and 9 s (times ``--scale``), prints the results, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cserver import fleet

from wsfleet.server import Server


async def main(name: str, redis: str, scale: float) -> None:
    print(f"Using configured values - serverName: {name}", flush=True)
    server = Server(fleet=fleet(name, redis))

    @server.on_cross_server_event("say")
    def say(data: dict[str, Any], reply: Any) -> None:
        # local-first: this node answers its own broadcasts without a trip through Redis
        print('Received "say" event from another server:', data, flush=True)
        if reply is not None:
            reply({"msg": f"Hi, this is server {server.server_name} responding to you"})

    await server.startup()
    await asyncio.sleep(3 * scale)
    server.emit_cross_server("say", {"content": f"Hi everyone, I am {name}"})

    await asyncio.sleep(3 * scale)
    done = asyncio.Event()

    def on_result(result: dict[str, Any]) -> None:
        print("Callback response result:", result, flush=True)
        if result["success"]:
            print("Received server callback:", result["data"], flush=True)
            print("Number of servers yet to respond:", result["remainingResponses"], flush=True)
            if result["remainingResponses"] == 0:
                done.set()
        else:
            print("Error message:", result["error"], flush=True)
            print("Number of servers that did not respond:", result["unrespondedCount"], flush=True)
            done.set()

    server.emit_cross_server(
        "say",
        {"content": f"Hi everyone, I am {name}, please respond with your callback."},
        on_result,
        expected_responses=3,
    )
    await done.wait()

    await asyncio.sleep(3 * scale)
    result = await server.emit_cross_server_with_promise(
        "say",
        {"content": f"Hi everyone, I am {name}, please respond to the promise."},
        expected_responses=3,
    )
    print("Promise response result:", result, flush=True)
    if result["success"]:
        print("All expected nodes responded:", sorted(result["responses"]), flush=True)
    else:
        print("Nodes that have responded so far:", sorted(result["responses"]), flush=True)
        print("Number of servers that did not respond:", result["unrespondedCount"], flush=True)
    await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="senderA")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.name, args.redis, args.scale))
