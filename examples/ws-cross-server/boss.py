"""The boss: a client that asks its server to broadcast, send to one player, to a group, and to
a room, every 3 s (times ``--scale``, starting after 6 s).

Run:  python boss.py [--port 9000] [--id 555] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio

from wsfleet.client import Connector

COMMANDS = [
    {"action": "broadcast", "msg": "Hello every one"},
    {"action": "toPlayer", "msg": "Hello player 13 ", "toPlayerId": "13"},
    {"action": "toPlayers", "msg": "Hello group players ", "toPlayerIds": ["3", "10", "25", "37"]},
    {"action": "toRoom", "msg": "Hello room players ", "roomId": "1000"},
]


async def main(port: int, boss_id: str, scale: float) -> None:
    print(f"Using configured values - port: {port}, id: {boss_id}", flush=True)
    async with Connector(f"ws://localhost:{port}", custom_params={"id": boss_id}) as client:
        client.on("open", lambda: print("Connect success", flush=True))
        client.on_event("say", lambda data: print("Received say event:", data, flush=True))
        await client.wait_open(timeout=10)
        await asyncio.sleep(6 * scale)
        for command in COMMANDS:
            reply = await client.emit_with_ack("command", command, timeout=5)
            print("Received callback response:", reply, flush=True)
            await asyncio.sleep(3 * scale)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--id", default="555")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.id, args.scale))
