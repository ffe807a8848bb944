"""Where a cluster link sends a command, and keys placed in a channel's slot."""

from __future__ import annotations

import pytest

from wsfleet.bus.cluster_publish import command_slot
from wsfleet.bus.slots import key_slot, slot_tag


def test_every_keyed_command_goes_to_its_key_slot() -> None:
    session = "csbp:wsfleet:rs:tok"
    for args in [
        ("HSET", session, "f", "v"),
        ("HGETALL", session),
        ("HDEL", session, "f"),
        ("PEXPIRE", session, 10),
        ("GET", session),
        ("SADD", session, "x"),
    ]:
        assert command_slot(args) == key_slot(session.encode()), args
    assert command_slot(("EVALSHA", "abc", 2, session, "other")) == key_slot(session.encode())
    assert command_slot(("EVAL", "return 1", 0)) == 0
    assert command_slot(("PING",)) == 0
    assert command_slot(("PUBSUB", "SHARDNUMSUB", session)) == 0


@pytest.mark.parametrize(
    "channel", ["ws:room:chat", "ws:broadcast", "a{tag}b", "odd}name", "{}x}", "}", "{x"]
)
def test_a_tagged_key_lands_in_the_slot_of_its_channel(channel: str) -> None:
    tag = slot_tag(channel)
    for rest in ["csbp:h:r:chat:r1", "x{y}z", ""]:
        assert key_slot((tag + rest).encode()) == key_slot(channel.encode()), (channel, rest)
        assert key_slot((tag + rest + ":e").encode()) == key_slot(channel.encode())
