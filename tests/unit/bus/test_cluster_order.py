"""The per-slot order of a cluster link's commands across redirects (wsfleet.bus.cluster_order):
what a subscriber of one channel would see is the order the commands were submitted in."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from wsfleet.bus.broker import Command
from wsfleet.bus.cluster_order import HELD, REFUSED, SENT, Address, Entry, SlotOrder
from wsfleet.bus.cluster_publish import ask_address

OLD: Address = ("127.0.0.1", 7000)
NEW: Address = ("127.0.0.1", 7001)
OTHER: Address = ("127.0.0.1", 7002)
SLOT, SLOT2 = 100, 200


@dataclass
class Shards:
    """A fake cluster: who owns each slot, which masters have a connected publisher, and what
    each master was sent (in order), each delivered command once."""

    owner: dict[int, Address] = field(default_factory=lambda: {SLOT: OLD, SLOT2: OTHER})
    up: set[Address] = field(default_factory=lambda: {OLD, NEW, OTHER})
    sent: list[tuple[str, Address, bool]] = field(default_factory=list)
    """(payload, master, after ASKING) for every send."""
    flying: list[Entry] = field(default_factory=list)

    def target(self, slot: int) -> Address | None:
        return self.owner.get(slot)

    def send(self, entry: Entry, address: Address) -> bool:
        if address not in self.up:
            return False
        self.sent.append((entry.command.args[2], address, entry.ask is not None))
        self.flying.append(entry)
        return True

    def take(self, *payloads: str) -> list[Entry]:
        """The entries in flight with these payloads (for replies), in the order given."""
        by_payload = {e.command.args[2]: e for e in self.flying}
        out = [by_payload[p] for p in payloads]
        self.flying = [e for e in self.flying if e not in out]
        return out


def publish(payload: str, channel: str = "inbox") -> Command:
    return Command(("PUBLISH", channel, payload))


def make(shards: Shards, max_bytes: int = 1 << 20) -> SlotOrder:
    order = SlotOrder(shards.target, shards.send, max_bytes=max_bytes)
    order.set_open(True)
    return order


def delivered(shards: Shards, address: Address) -> list[str]:
    return [p for p, a, _ in shards.sent if a == address]


def test_commands_handed_back_in_separate_groups_go_out_again_in_submission_order() -> None:
    shards = Shards()
    order = make(shards)
    for i in range(6):
        assert order.submit(publish(f"m{i}"), SLOT, 0.0) == SENT
    # The old master died: the link closes the gate; the queue not written yet comes back first,
    # then the replies the connection never got (two groups, the newer one first).
    order.set_open(False)
    for entry in shards.take("m4", "m5"):
        order.back(entry)
    order.submit(publish("m6"), SLOT, 0.0)  # submitted meanwhile: held behind
    for entry in shards.take("m1", "m2", "m3"):
        order.back(entry)
    (m0,) = shards.take("m0")
    order.answered(m0)  # answered before the connection died
    assert [e.command.args[2] for e in order.held(SLOT)] == ["m1", "m2", "m3", "m4", "m5", "m6"]
    shards.sent.clear()
    shards.owner[SLOT] = NEW  # the replica took over
    order.set_open(True)
    assert delivered(shards, NEW) == ["m1", "m2", "m3", "m4", "m5", "m6"]
    assert order.held_count == 0 and order.inflight(SLOT) == 6


def test_a_newer_command_never_overtakes_one_redirected_from_the_old_master() -> None:
    """The bug of issue 15: after the slot map moved the slot, a new command went to the new
    master while older ones were still on their way to the old one; those came back MOVED
    and were resent after it."""
    shards = Shards()
    order = make(shards)
    order.submit(publish("a"), SLOT, 0.0)
    order.submit(publish("b"), SLOT, 0.0)
    shards.owner[SLOT] = NEW  # a refresh moved the slot while a and b are unanswered on OLD
    assert order.submit(publish("c"), SLOT, 0.0) == HELD
    assert delivered(shards, NEW) == []
    for entry in shards.take("a", "b"):
        order.back(entry)  # MOVED
    assert delivered(shards, NEW) == ["a", "b", "c"]  # one batch, in submission order
    assert order.submit(publish("d"), SLOT, 0.0) == HELD  # probation: those answered first
    for entry in shards.take("a", "b", "c"):
        order.answered(entry)
    assert delivered(shards, NEW) == ["a", "b", "c", "d"]
    for entry in shards.take("d"):
        order.answered(entry)
    assert order.submit(publish("e"), SLOT, 0.0) == SENT  # probation over: pipelined again
    assert order.submit(publish("f"), SLOT, 0.0) == SENT


def test_a_clusterdown_on_a_resent_command_is_not_overtaken_by_later_ones() -> None:
    shards = Shards()
    order = make(shards)
    order.submit(publish("a"), SLOT, 0.0)
    order.set_open(False)
    (a,) = shards.take("a")
    order.back(a)
    order.set_open(True)  # a out again
    order.submit(publish("b"), SLOT, 0.0)  # on probation: waits for a's answer
    assert [p for p, _, _ in shards.sent] == ["a", "a"]
    order.set_open(False)
    (a,) = shards.take("a")
    order.back(a)  # CLUSTERDOWN: b was not sent behind it, so the shard could not accept b
    order.set_open(True)
    assert [p for p, _, _ in shards.sent] == ["a", "a", "a", "b"]


def test_other_slots_flow_while_one_slot_holds() -> None:
    shards = Shards()
    order = make(shards)
    order.submit(publish("a"), SLOT, 0.0)
    order.submit(publish("x"), SLOT2, 0.0)
    shards.up.discard(OLD)
    (a,) = shards.take("a")
    order.back(a)  # lost with its connection; the gate stays open (e.g. no bus)
    assert order.submit(publish("b"), SLOT, 0.0) == HELD
    assert order.submit(publish("y"), SLOT2, 0.0) == SENT
    shards.up.add(OLD)  # reconnected: the link calls release_all
    order.release_all()
    assert delivered(shards, OLD) == ["a", "a", "b"]
    assert delivered(shards, OTHER) == ["x", "y"]


def test_an_ask_resends_that_command_alone_to_the_importing_node_after_asking() -> None:
    shards = Shards()
    order = make(shards)
    order.submit(publish("a", "k"), SLOT, 0.0)
    order.submit(publish("b", "k"), SLOT, 0.0)
    a, b = shards.take("a", "b")
    order.back(a, ask=NEW)  # the key moved already
    assert shards.sent[-1] == ("b", OLD, False)  # b is still unanswered on OLD: a waits
    order.answered(b)  # b's key had not moved
    assert shards.sent[-1] == ("a", NEW, True)  # ASKING, then a, on the importing node
    order.submit(publish("c", "k"), SLOT, 0.0)  # the map still says OLD: after a's answer
    assert shards.sent[-1] == ("a", NEW, True)
    (a,) = shards.take("a")
    order.answered(a)
    assert shards.sent[-1] == ("c", OLD, False)
    assert shards.owner[SLOT] == OLD


def test_held_commands_are_bounded_in_bytes_and_expire() -> None:
    shards = Shards()
    order = make(shards, max_bytes=50)  # bytes of the arguments: 32 + 32 + 13
    order.set_open(False)
    assert order.submit(publish("x" * 20), SLOT, 0.0) == HELD
    assert order.submit(publish("y" * 20), SLOT, 1.0) == REFUSED  # over 50 bytes: hand-back
    assert order.submit(publish("z"), SLOT, 5.0) == HELD
    assert order.held_bytes == 32 + 13
    expired = order.expire(now=31.0, max_age=30.0)
    assert [e.command.args[2] for e in expired] == ["x" * 20]
    assert [e.command.args[2] for e in order.take_held()] == ["z"]
    assert order.held_count == 0 and order.held_bytes == 0


def test_nothing_goes_out_while_the_gate_is_closed_or_no_master_owns_the_slot() -> None:
    shards = Shards()
    order = make(shards)
    order.set_open(False)
    assert order.submit(publish("a"), SLOT, 0.0) == HELD
    del shards.owner[SLOT]
    order.set_open(True)
    assert shards.sent == []
    shards.owner[SLOT] = NEW
    order.release_all()
    assert shards.sent == [("a", NEW, False)]


@pytest.mark.parametrize(
    ("reply", "address"),
    [
        ("ASK 3999 127.0.0.1:6381", ("127.0.0.1", 6381)),
        ("ASK 3999 [::1]:6381", ("::1", 6381)),
        ("MOVED 3999 127.0.0.1:6381", None),
        ("ASK 3999 127.0.0.1:99999", None),
        ("ASK nonsense", None),
    ],
)
def test_ask_replies_are_read_and_garbage_is_not_trusted(
    reply: str, address: Address | None
) -> None:
    assert ask_address(Exception(reply)) == address
