"""S1's live-path cost of recovery, in process: ``python -m bench.recovery_micro``.

``Server.broadcast`` per recipient to 1,000 sockets on stub transports, on a node in a fleet over
a real ``redis-server``: recovery off, then on with every socket recovering (each frame stamped
with its position; one history append per broadcast). Best of several rounds, microseconds.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from tests.redis_procs import RedisProcess, free_port

from bench.micro import TICK, StubTransport, best_us
from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.server import Server, ServerSettings, UpgradeRequest

RECIPIENTS = 1000


class _Transport(StubTransport):
    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def _open(server: Server, socket_id: str, recover: bool) -> None:
    params = {"id": socket_id, **({"wsf_recover": "1"} if recover else {})}
    request = UpgradeRequest("ws", params, "", {}, {}, None)
    if recover:
        request.extra["wsf_recovery"] = _pending()
    server.dispatcher.open(_Transport(), lambda code, reason: None, request, socket_id)  # type: ignore[arg-type]


def _pending() -> object:
    from wsfleet.server.recovery import _Pending

    return _Pending(None, {}, None)


async def measure(redis: RedisProcess, recover: bool) -> float:
    settings = ServerSettings(recovery=recover)
    fleet = FleetSettings(redis=(RedisNode.parse(redis.address),), server_name=f"m{recover}")
    server = Server(settings, fleet=fleet)
    await server.startup()
    try:
        for i in range(RECIPIENTS):
            _open(server, f"s{i}", recover)
        per = best_us(lambda: server.broadcast("tick", TICK), 20, 7)
        await server.fleet.flush(10.0)  # type: ignore[union-attr]
        return per / RECIPIENTS
    finally:
        await server.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisProcess(free_port(), Path(workdir))
        await redis.start()
        try:
            off = await measure(redis, False)
            on = await measure(redis, True)
        finally:
            await redis.kill()
    print(f"S1 Server.broadcast per recipient ({RECIPIENTS}): off {off:.3f} µs, on {on:.3f} µs")
    print(f"on/off: {on / off:.2f}×")


if __name__ == "__main__":
    asyncio.run(main())
