"""The original README's single-server example, ported: a node without Redis.

Run:  python server.py [--port 9000] [--broadcast-every 15] [--room-every 10]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from wsfleet.server import Acknowledge, Server, Socket


def build(broadcast_every: float, room_every: float) -> Server:
    server = Server()

    @server.on_system("connection")
    def connected(socket: Socket) -> None:
        print("Client connection")
        # the original's parseWsRequestParams(req), already parsed for every socket
        print(
            "Connection params:", {"params": dict(socket.params), "path": socket.path}, flush=True
        )
        # For demonstration only: trust the id the client sends. Authenticate for real before
        # the upgrade with Server(authenticate=...) - see docs/api.md.
        player_id = socket.request.param("id")
        if player_id:
            print(f"The client's ID is: {player_id}", flush=True)
            server.set_user_socket(player_id, socket)
        else:
            socket.close(4011, "Auth failure")  # a custom close code: the client won't reconnect

    @server.on_system("close")
    def disconnected(socket: Socket, code: int, reason: str) -> None:
        # wsfleet removes the id mapping and room memberships itself (no leak, no W9 race).
        print(f"Client disconnected, id: {socket.id} code: {code}", flush=True)

    @server.on("say")
    def say(socket: Socket, data: Any, ack: Acknowledge | None) -> None:
        print(f"Received 'say' event from client {socket.id}:", data, flush=True)
        if ack is not None:
            ack({"msg": "I am a callback for your say event"})

    @server.on("joinRoom")
    def join_room(socket: Socket, data: Any, ack: Acknowledge | None) -> None:
        print(f"Received 'joinRoom' event from client {socket.id}:", data, flush=True)
        if socket.id is not None:
            server.join_room("testRoom", "1000", socket.id)
        if ack is not None:
            ack({"msg": "JoinRoom successfully"})

    async def tick(every: float, send: Any) -> None:
        while True:
            await asyncio.sleep(every)
            send()

    tasks: list[asyncio.Task[None]] = []

    @server.on_system("listening")
    def start_timers() -> None:
        tasks.append(
            asyncio.create_task(
                tick(
                    broadcast_every,
                    lambda: server.broadcast(
                        "serverSay", {"msg": "I'm sending this message to everyone"}
                    ),
                )
            )
        )
        tasks.append(
            asyncio.create_task(
                tick(
                    room_every,
                    lambda: server.broadcast_to_room(
                        "testRoom",
                        "1000",
                        "roomSay",
                        {"msg": "This is a message sent to the test room"},
                    ),
                )
            )
        )

    @server.on_system("server-close")
    def stop_timers() -> None:
        for task in tasks:
            task.cancel()

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--broadcast-every", type=float, default=15.0)
    parser.add_argument("--room-every", type=float, default=10.0)
    args = parser.parse_args()
    print(f"Using configured values - port: {args.port}", flush=True)
    server = build(args.broadcast_every, args.room_every)
    server.run(
        "127.0.0.1",
        args.port,
        on_listening=lambda port: print(f"listening on http://127.0.0.1:{port}", flush=True),
    )


if __name__ == "__main__":
    main()
