"""History streams are on Redis, where anyone may write: a fleet that signs its bus replays only
entries its own nodes sealed. A forged entry between a client's position and its reconnect ends
in "not recovered", never in the forged frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.integration.fleet.conftest import MakeFleet
from tests.integration.fleet.test_recovery import RECOVERY, _marked, _recorder, app
from tests.redis_procs import RedisProcess
from tests.switch import Switch

from wsfleet.bus import envelopes as env
from wsfleet.sealing import KeyRing, Signer

KEYS = "k1:" + "a" * 40
FORGED = '{"event":"tick","payload":{"n":666}}'


@pytest.mark.parametrize("forgery", ["unsigned", "another key", "another channel"])
async def test_a_forged_history_entry_is_not_replayed(
    redis: RedisProcess, make_fleet: MakeFleet, switch: Any, tmp_path: Path, forgery: str
) -> None:
    (tmp_path / "keys").write_text(KEYS)
    a, b = await make_fleet([redis], 2, settings=RECOVERY, bus_key_file=tmp_path / "keys")
    app(a)
    s: Switch = await switch(a.port)
    async with _recorder(s.url("id=f1")) as recorder:
        await recorder.client.connect()
        await wait_until(lambda: a.server.is_joined_room("f1", "feed", "main"))
        await _marked(a)
        b.server.broadcast_to_room("feed", "main", "tick", {"n": 0})
        await wait_until(lambda: recorder.room == [0])

        recovery = a.server.recovery
        assert recovery is not None
        target = recovery.history.room("feed", "main")
        bus = a.server.fleet.bus  # type: ignore[union-attr]
        meta = {"b": "forger", "s": 1, "h": 1}
        message = env.room(FORGED, "feed", "main", b.name, [], meta)
        data = bus.codec.dumps(message)
        if forgery == "another key":
            data = Signer(KeyRing.parse("k1:" + "b" * 40)).seal(data, target.channel)
        elif forgery == "another channel":
            data = Signer(KeyRing.parse(KEYS)).seal(data, "csbp:ws:room:other")
        link = next(iter(bus.links.values()))
        await link.call("XADD", target.stream, "*", "e", data)  # what an intruder can do

        s.target = b.port
        socket = a.server.get_socket("f1")
        assert socket is not None
        socket.close(1012, "moving")
        await wait_until(lambda: len(recorder.recoveries) == 1, 10)
        info = recorder.recoveries[0]
        assert not info.recovered
        assert info.reason == "history entry refused"
        b.server.broadcast_to_room("feed", "main", "tick", {"n": 1})
        await wait_until(lambda: recorder.room[-1:] == [1])
        assert 666 not in recorder.room


async def test_a_signed_history_replays_and_the_room_history_skips_a_forged_entry(
    redis: RedisProcess, make_fleet: MakeFleet, tmp_path: Path
) -> None:
    (tmp_path / "keys").write_text(KEYS)
    a, b = await make_fleet([redis], 2, settings=RECOVERY, bus_key_file=tmp_path / "keys")
    for n in range(3):
        a.server.broadcast_to_room("feed", "hist", "tick", {"n": n})
    await a.server.fleet.flush(5.0)  # type: ignore[union-attr]
    recovery = b.server.recovery
    assert recovery is not None
    target = recovery.history.room("feed", "hist")
    bus = b.server.fleet.bus  # type: ignore[union-attr]
    meta = {"b": "x", "s": 9, "h": 1}
    forged = bus.codec.dumps(env.room(FORGED, "feed", "hist", a.name, [], meta))
    await next(iter(bus.links.values())).call("XADD", target.stream, "*", "e", forged)
    a.server.broadcast_to_room("feed", "hist", "tick", {"n": 3})
    await a.server.fleet.flush(5.0)  # type: ignore[union-attr]
    last = await b.server.room_history("feed", "hist", limit=10)
    assert [e.payload["n"] for e in last.entries] == [0, 1, 2, 3]
