"""The Hub: registry, rooms and local delivery, and what it tells the fleet (Propagation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from wsfleet.protocol.codes import CloseCode
from wsfleet.server import DuplicatePolicy, DuplicateSocketError, ServerSettings, Socket
from wsfleet.server.errors import UnknownSocketError
from wsfleet.server.hub import Hub
from wsfleet.server.socket import UpgradeRequest
from wsfleet.server.stats import NodeStats


class Wire:
    """A transport that keeps what was written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.closing = True


class Recorder:
    """A Propagation that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.claims: list[tuple[str, int]] = []

    def claim(self, socket_id: str, since: int) -> None:
        self.calls.append(("claim", socket_id))
        self.claims.append((socket_id, since))

    def release(self, socket_id: str) -> None:
        self.calls.append(("release", socket_id))

    def namespace_used(self, namespace: str) -> None:
        self.calls.append(("used", namespace))

    def namespace_emptied(self, namespace: str) -> None:
        self.calls.append(("emptied", namespace))

    per_room = False

    def room_used(self, namespace: str, room_id: str) -> None:
        self.calls.append(("room-used", namespace, room_id))

    def room_emptied(self, namespace: str, room_id: str) -> None:
        self.calls.append(("room-emptied", namespace, room_id))

    def publish_broadcast(self, text: bytes) -> None:
        self.calls.append(("broadcast", text))

    def publish_room(self, namespace: str, room_id: str, text: bytes, exclude: list[str]) -> None:
        self.calls.append(("room", namespace, room_id, text, exclude))

    def send_private(self, socket_ids: Iterable[str], text: bytes) -> bool:
        self.calls.append(("private", list(socket_ids), text))
        return True

    def send_private_ids(self, socket_ids: list[str], text: bytes) -> None:
        self.calls.append(("private-ids", socket_ids, text))


REQUEST = UpgradeRequest(path="", params={}, query_string="", headers={}, cookies={}, remote=None)


def make(policy: DuplicatePolicy = DuplicatePolicy.CLOSE_OLD) -> tuple[Hub, Recorder, NodeStats]:
    stats = NodeStats()
    recorder = Recorder()
    return Hub(ServerSettings(duplicate_policy=policy), stats, recorder), recorder, stats


def socket(hub: Hub, closed: list[int] | None = None) -> tuple[Socket, Wire]:
    wire = Wire()
    sock = Socket(
        hub.stats,
        wire,  # type: ignore[arg-type]
        lambda code, reason: (closed if closed is not None else []).append(code),
        REQUEST,
        1,
        1 << 20,
    )
    hub.add_connection(sock)
    return sock, wire


def test_rooms_with_channels_of_their_own_tell_the_fleet_when_each_comes_and_goes() -> None:
    hub, rec, _ = make()
    rec.per_room = True  # a fleet on a Redis Cluster
    a, _ = socket(hub)
    b, _ = socket(hub)
    hub.register("a", a)
    hub.register("b", b)
    hub.join("chat", "lobby", "a")
    hub.join("chat", "lobby", "b")  # not the first member: nothing new
    hub.join("chat", "other", "a")
    hub.join("chat", "gone", "b")
    hub.leave("chat", "lobby", "a")  # b is still there
    hub.leave("chat", "lobby", "a")  # not a member any more: nothing
    hub.remove_room("chat", "gone")
    hub.unregister(b)  # the last member of lobby
    hub.leave("chat", "other", "a")
    rooms = [c for c in rec.calls if c[0] in ("room-used", "room-emptied", "used", "emptied")]
    assert rooms == [
        ("used", "chat"),
        ("room-used", "chat", "lobby"),
        ("room-used", "chat", "other"),
        ("room-used", "chat", "gone"),
        ("room-emptied", "chat", "gone"),
        ("room-emptied", "chat", "lobby"),
        ("room-emptied", "chat", "other"),
        ("emptied", "chat"),
    ]


def test_rooms_tell_the_fleet_when_a_namespace_comes_and_goes() -> None:
    hub, rec, _ = make()
    a, _ = socket(hub)
    hub.register("a", a)
    hub.join("chat", "lobby", "a")
    hub.join("chat", "other", "a")
    assert hub.room_ids("chat") == ["lobby", "other"]
    hub.unregister(a)
    assert rec.calls == [("claim", "a"), ("used", "chat"), ("release", "a"), ("emptied", "chat")]
    with pytest.raises(UnknownSocketError):
        hub.join("chat", "lobby", "a")
    with pytest.raises(ValueError, match="reserved"):
        hub.join("broadcast", "x", "a")


def test_sends_are_delivered_locally_then_propagated() -> None:
    hub, rec, stats = make()
    a, wire_a = socket(hub)
    b, wire_b = socket(hub)
    hub.register("a", a)
    hub.register("b", b)
    hub.join("chat", "lobby", "a")
    hub.join("chat", "lobby", "b")
    rec.calls.clear()
    assert hub.to_room("chat", "lobby", b"x", ["b"]) == 1
    assert hub.broadcast(b"y") == 2
    assert hub.to_ids(["a", "zz"], b"z") == 1
    assert hub.to_id("yy", b"w")
    assert [c[0] for c in rec.calls] == ["room", "broadcast", "private-ids", "private"]
    assert rec.calls[2][1] == ["zz"]
    assert len(wire_a.written) == 3 and len(wire_b.written) == 1
    assert stats.broadcasts == 1
    assert hub.broadcast(b"local", local_only=True) == 2
    assert len(rec.calls) == 4


def test_a_login_elsewhere_closes_ours_without_releasing_the_id() -> None:
    hub, rec, stats = make()
    closed: list[int] = []
    a, _ = socket(hub, closed)
    hub.register("a", a)
    assert hub.logged_in_elsewhere("a")
    assert hub.get("a") is None and closed == [CloseCode.DUPLICATE_LOGIN]
    assert ("release", "a") not in rec.calls and stats.duplicate_logins == 1


def test_a_notice_of_an_older_login_is_stale_and_ours_claims_again() -> None:
    hub, rec, stats = make()
    closed: list[int] = []
    a, _ = socket(hub, closed)
    hub.register("a", a, since=2000)
    assert rec.claims == [("a", 2000)]
    assert not hub.logged_in_elsewhere("a", 1999)  # the other node's login is older
    assert hub.get("a") is a and closed == [] and stats.stale_duplicate_notices == 1
    assert rec.claims == [("a", 2000), ("a", 2000)]  # so the other node is told, and closes
    assert hub.logged_in_elsewhere("a", 2000)  # as new as ours, or newer: the newest wins
    assert hub.get("a") is None and closed == [CloseCode.DUPLICATE_LOGIN]


def test_reject_new_keeps_the_first_socket() -> None:
    hub, _, _ = make(DuplicatePolicy.REJECT_NEW)
    closed: list[int] = []
    a, _ = socket(hub)
    b, _ = socket(hub, closed)
    hub.register("a", a)
    with pytest.raises(DuplicateSocketError):
        hub.register("a", b)
    assert hub.get("a") is a and closed == [CloseCode.DUPLICATE_LOGIN]


async def test_waiting_for_the_last_connection() -> None:
    hub, _, _ = make()
    a, _ = socket(hub)
    assert not await hub.wait_no_connections(0.01)
    hub.discard_connection(a)
    assert await hub.wait_no_connections(0.01)


def test_a_frame_from_the_bus_for_one_socket_is_written_once_and_only_while_it_is_open() -> None:
    hub, rec, _ = make()
    a, wire = socket(hub)
    hub.register("a", a)
    rec.calls.clear()
    assert hub.deliver_one("a", b"\x81\x01x")
    assert not hub.deliver_one("gone", b"\x81\x01y")
    wire.closing = True
    assert not hub.deliver_one("a", b"\x81\x01z")
    assert wire.written == [b"\x81\x01x"]
    assert rec.calls == []  # a frame from the bus is never propagated again
