"""wsfleet's envelopes (e) and (f), byte for byte against what the stand-in original node
published (tests/fixtures/original_bus.json)."""

from __future__ import annotations

import pytest
from tests.fixtures.original_bus import captured

from wsfleet.bus import envelopes as env
from wsfleet.bus.codec import BusCodec, Serialization
from wsfleet.protocol.codec import encode_event


@pytest.mark.parametrize("mode", list(Serialization))
def test_broadcast_and_room_envelopes_are_the_originals(mode: Serialization) -> None:
    codec = BusCodec(mode)
    channel, raw = captured(mode.value, "broadcast_lone")
    frame = encode_event("news", {"s": "\ud800x"}).decode()
    assert channel == "ws:broadcast"
    assert codec.dumps(env.broadcast(frame, "orig1", None)) == raw
    channel, raw = captured(mode.value, "room")
    frame = encode_event("turn", {"n": 1}).decode()
    assert channel == "ws:game"
    assert codec.dumps(env.room(frame, "game", "r1", "orig1", ["u3"], None)) == raw
    parsed = env.parse_room(codec.loads(raw))
    assert (parsed.namespace, parsed.room_id, parsed.exclude) == ("game", "r1", ["u3"])
