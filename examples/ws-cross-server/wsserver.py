"""The original README's distributed WebSocket example: five of these share one Redis.

Run:  python wsserver.py --name serverA --port 9000 [--redis 127.0.0.1:6379]
"""

from __future__ import annotations

import argparse
from typing import Any

from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.server import Acknowledge, Server, Socket


def build(name: str, redis: str) -> Server:
    nodes = tuple(RedisNode.parse(address) for address in redis.split(","))
    server = Server(fleet=FleetSettings(redis=nodes, server_name=name))

    @server.on_system("connection")
    def connected(socket: Socket) -> None:
        print(f"[{name}] Client Connection params:", dict(socket.params), flush=True)
        player_id = socket.request.param("id")
        if player_id:
            server.set_user_socket(player_id, socket)
        else:
            socket.close(4011, "Auth failure")

    @server.on_system("close")
    def disconnected(socket: Socket, code: int, reason: str) -> None:
        print(f"[{name}] Client {socket.id} disconnected", flush=True)

    @server.on("joinRoom")
    def join_room(socket: Socket, data: Any, ack: Acknowledge | None) -> dict[str, str]:
        if socket.id and isinstance(data, dict) and data.get("roomId"):
            print(f"[{name}] Client {socket.id} wants to join room {data['roomId']}", flush=True)
            server.join_room("chat", str(data["roomId"]), socket.id)
            return {"msg": f"Successfully joined the roomId:{data['roomId']}"}
        return {"msg": "Failed to join the room"}

    @server.on("command")
    def command(socket: Socket, data: Any, ack: Acknowledge | None) -> dict[str, str]:
        print(f"[{name}] Received 'command' event from client {socket.id}:", data, flush=True)
        if not isinstance(data, dict) or not isinstance(data.get("action"), str):
            return {"msg": "Failed to send message"}
        action, msg = data["action"], data.get("msg")
        if action == "broadcast":
            server.broadcast("say", {"action": action, "msg": msg})
        elif action == "toPlayer" and data.get("toPlayerId"):
            server.to_socket_id(str(data["toPlayerId"]), "say", {"action": action, "msg": msg})
        elif action == "toPlayers" and isinstance(data.get("toPlayerIds"), list):
            ids = [str(i) for i in data["toPlayerIds"]]
            server.to_socket_ids(ids, "say", {"action": action, "msg": msg})
        elif action == "toRoom" and data.get("roomId"):
            server.broadcast_to_room(
                "chat", str(data["roomId"]), "say", {"action": action, "msg": msg}
            )
        elif action not in ("toPlayer", "toPlayers", "toRoom"):
            return {"msg": "Unknown action type"}
        return {"msg": f"Message sent successfully [action:{action}] "}

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="serverA")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    print(f"Using configured values - serverName: {args.name}, port: {args.port}", flush=True)
    build(args.name, args.redis).run(
        "127.0.0.1",
        args.port,
        on_listening=lambda port: print(f"listening on http://127.0.0.1:{port}", flush=True),
    )


if __name__ == "__main__":
    main()
