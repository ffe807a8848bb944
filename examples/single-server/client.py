"""The original README's single-server client, ported to wsfleet's Python client.

Run:  python client.py [--port 9000] [--id 1] [--scale 1.0] [--run-for SECONDS]
``--scale`` shrinks the example's delays (2 s, 4 s, 6 s) for quick runs.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from wsfleet.client import Connector


async def run(port: int, client_id: str, scale: float, run_for: float | None) -> None:
    client = Connector(f"ws://localhost:{port}", custom_params={"name": "Sam", "id": client_id})
    closed = asyncio.Event()

    client.on("open", lambda: print("Connect success", flush=True))

    @client.on("close")
    def on_close(code: int | None, reason: str) -> None:
        print("onCode event:", code, reason, flush=True)
        if code in (4001, 4010, 4011, 4012):
            print(
                "Connection closed manually or by forced logout/auth failure. No reconnection.",
                flush=True,
            )
            client.manual_close()
            closed.set()
        # other codes: wsfleet's client reconnects by itself (reconnect_on_close)

    client.on("error", lambda exc: print("Connect on error", flush=True))
    client.on(
        "reconnect",
        lambda info: print(
            f"Preparing for reconnection attempt #{info['repeat']}, actual reconnection will occur "
            f"in {info['timeout']} ms",
            flush=True,
        ),
    )
    client.on_event("serverSay", lambda data: print("Received serverSay event:", data, flush=True))
    client.on_event("roomSay", lambda data: print("Received roomSay event:", data, flush=True))
    client.on("pong", lambda speed: print(f"Network latency: {speed} ms", flush=True))

    await client.connect()

    async def script() -> None:
        await asyncio.sleep(2 * scale)
        data = await client.emit_with_promise(
            "say",
            {"msg": f"I am a client with ID: {client_id}, and I need your promise callback."},
            on_pending=lambda: print("requesting...", flush=True),
        )
        print("Received promise response:", data, flush=True)
        await asyncio.sleep(2 * scale)

        def callback(err: Any, data: Any) -> None:
            if err:
                print("Callback error occurred", err, flush=True)
            else:
                print("Received callback response:", data, flush=True)

        client.emit(
            "say",
            {"msg": f"I am a client with ID: {client_id}, and I need your callback."},
            callback,
            callback_timeout=1.0,
        )
        await asyncio.sleep(2 * scale)

        def joined(err: Any, data: Any) -> None:
            print(
                "JoinRoom Received callback response:" if not err else "JoinRoom error:",
                data or err,
                flush=True,
            )

        client.emit("joinRoom", {"msg": "I want to join the test room"}, joined)

    task = asyncio.create_task(script())
    try:
        waiters = [asyncio.ensure_future(closed.wait())]
        await asyncio.wait(waiters, timeout=run_for)
        for waiter in waiters:
            waiter.cancel()
    finally:
        task.cancel()
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--id", default="1")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--run-for", type=float, default=None, help="exit after this many seconds")
    args = parser.parse_args()
    print(f"Using configured values - port: {args.port}, id: {args.id}", flush=True)
    asyncio.run(run(args.port, args.id, args.scale, args.run_for))


if __name__ == "__main__":
    main()
