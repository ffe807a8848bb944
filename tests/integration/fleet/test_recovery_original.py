"""Recovery-enabled wsfleet nodes and an original node (the stand-in of
``tests/interop/original-node``) on one Redis bus: the original node and the original client's
frames see nothing new; a recovering client gets the original node's messages live (they carry
no position: they are in no history)."""

from __future__ import annotations

import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet import test_original_interop as interop
from tests.integration.fleet.conftest import MakeFleet, join
from tests.integration.fleet.test_original_interop import StartOriginal, frame, wait_numsub
from tests.integration.fleet.test_recovery import RECOVERY, Recorder
from tests.redis_procs import RedisProcess

from wsfleet.server.recovery_session import room_tag

pytestmark = pytest.mark.integration
original_node_ready = interop.original_node_ready  # the original node's fixtures
start_original = interop.start_original


async def test_original_nodes_and_clients_see_nothing_new_from_recovery_nodes(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect, start_original: StartOriginal
) -> None:
    a, b = await make_fleet([redis], 2, settings=RECOVERY)
    a1, b1 = await join(connect, a, "a1"), await join(connect, b, "b1")
    recorder = Recorder(b.url("id=rc"))
    await recorder.client.connect()
    try:
        await wait_until(lambda: recorder.client.recovery_session is not None)
        a.server.join_room("game", "r1", "a1")
        b.server.join_room("game", "r1", "b1")
        b.server.join_room("game", "r1", "rc")
        orig = await start_original(redis)
        await orig.call("register", socketId="o1")
        await orig.call("join", ns="game", roomId="r1", socketId="o1")
        await wait_numsub(redis, "ws:game", 3)

        # recovery node -> original node and original clients: the frames are unchanged
        a.server.broadcast_to_room("game", "r1", "tick", {"n": 1})
        a.server.to_socket_id("o1", "dm", {"n": 2})
        a.server.broadcast("news", {"n": 3})
        await orig.received("o1", frame("tick", {"n": 1}))
        await orig.received("o1", frame("dm", {"n": 2}))
        await orig.received("o1", frame("news", {"n": 3}))
        assert await a1.recv() == frame("tick", {"n": 1})
        assert await a1.recv() == frame("news", {"n": 3})
        assert await b1.recv() == frame("tick", {"n": 1})
        assert await b1.recv() == frame("news", {"n": 3})

        # original node -> a recovering client: delivered live, without a position
        await orig.call("broadcastToRoom", ns="game", roomId="r1", event="tick", payload={"n": 4})
        assert await b1.recv() == frame("tick", {"n": 4})
        await wait_until(lambda: recorder.room == [1, 4])
        history = await b.server.room_history("game", "r1")
        assert [e.payload for e in history.entries] == [{"n": 1}]  # the original's is not kept
        assert history.entries[0].position.startswith(room_tag("game", "r1") + "/")
    finally:
        await recorder.client.aclose()
