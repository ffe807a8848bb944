"""The fleet's application in the end-to-end test (``fleet.server.app``): the demo chat plus

- ``dm`` {to, text} -> ``direct`` {from, text} pushed to the socket ``to`` on whichever pod it
  is connected (through Redis when that is another pod);
- ``nodes`` -> the names of the other pods that answered a cross-server call (an RPC to every
  node of the fleet)."""

from __future__ import annotations

from typing import Any

from wsfleet.demo.app import setup as demo_setup
from wsfleet.server import Server


def setup(server: Server) -> None:
    demo_setup(server)

    @server.on("dm")
    def direct(socket: Any, payload: Any, ack: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("to"), str):
            raise ValueError("payload needs a 'to' socket id")
        text = str(payload.get("text", ""))[:200]
        sent = server.to_socket_id(payload["to"], "direct", {"from": socket.id, "text": text})
        return {"ok": sent}

    server.on_cross_server_event("e2e.name", lambda data, reply: server.server_name)

    @server.on("nodes")
    async def nodes(socket: Any, payload: Any, ack: Any) -> list[str]:
        result = await server.emit_cross_server_async(
            "e2e.name", {}, mode="all", exclude_self=True, timeout=5
        )
        return sorted(str(r.get("payload")) for r in result.responses.values())
