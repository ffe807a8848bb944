"""A Sentinel switch moves a node's subscriber only once the old master fell quiet (nodes that
have not heard of the switch yet still publish there), and a probe lost across such a move is
not taken for a deaf subscriber (whose repair, a resubscription, drops the peers' messages)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import wait_until
from tests.subscriber_fakes import INBOX, Writes, subscriber

from wsfleet.bus.auth import BusAuth
from wsfleet.bus.broker import Command, LinkHealth
from wsfleet.bus.codec import BusCodec, Serialization
from wsfleet.bus.probing import Prober
from wsfleet.bus.settings import FleetSettings
from wsfleet.clock import LoopClock


async def test_the_subscriber_leaves_the_old_master_once_it_is_quiet() -> None:
    loop = asyncio.get_running_loop()
    sub = subscriber()
    conn = Writes(read_at=loop.time())
    sub.conn = conn  # type: ignore[assignment]
    sub.leave_when_quiet(0.1, 5.0)
    for _ in range(6):  # a late node still publishes on the old master: keep reading
        await asyncio.sleep(0.05)
        conn.read_at = loop.time()
        assert conn.sent == []
    quiet_from = loop.time()
    await wait_until(lambda: bool(conn.sent), 2)
    assert conn.sent == [b"*1\r\n$11\r\nUNSUBSCRIBE\r\n"]  # then reconnects to the new master
    assert loop.time() - quiet_from >= 0.09
    sub.close(RuntimeError("test over"))


async def test_the_subscriber_leaves_the_old_master_after_the_longest_wait() -> None:
    loop = asyncio.get_running_loop()
    sub = subscriber()
    conn = Writes(read_at=loop.time())
    sub.conn = conn  # type: ignore[assignment]
    start = loop.time()
    sub.leave_when_quiet(0.1, 0.3)
    while not conn.sent:
        await asyncio.sleep(0.02)
        conn.read_at = loop.time()  # never quiet
        assert loop.time() - start < 2
    assert loop.time() - start >= 0.29
    sub.close(RuntimeError("test over"))


@dataclass
class ProbedLink:
    """A link whose probe is never read back (published on the new master while the
    subscriber still read the old one); ``moves`` reconnects its subscriber meanwhile."""

    moves: bool
    key: str = "r1"
    node: str = "redis://r1"
    health: LinkHealth = field(default_factory=lambda: LinkHealth(True, True))
    resubscribed: int = 0

    @property
    def subscriber_healthy(self) -> bool:
        return True

    @property
    def publisher_healthy(self) -> bool:
        return True

    def is_subscribed(self, channels: Any) -> bool:
        return True

    def submit(self, command: Command) -> None:
        assert command.future is not None
        command.future.set_result(1)
        if self.moves:
            self.health.reconnects += 1

    def force_resubscribe(self) -> None:
        self.resubscribed += 1


@dataclass
class Host:
    links: dict[str, Any]
    settings: FleetSettings = field(
        default_factory=lambda: FleetSettings(server_name="n1", probe_timeout=0.05)
    )
    clock: LoopClock = field(default_factory=LoopClock)
    codec: BusCodec = field(default_factory=BusCodec)
    auth: BusAuth = field(default_factory=lambda: BusAuth(None, Serialization.MSGPACK))
    inbox: str = INBOX.decode()


@dataclass
class Stats:
    probes_sent: int = 0
    probes_failed: int = 0
    deaf_repairs: int = 0
    probe_rtt: dict[str, float] = field(default_factory=dict)


async def test_a_probe_lost_across_a_master_move_does_not_resubscribe() -> None:
    moved, deaf = ProbedLink(moves=True), ProbedLink(moves=False, key="r2")
    stats = Stats()
    await Prober(Host({"r1": moved, "r2": deaf}), stats).probe_all()  # type: ignore[arg-type]
    assert stats.probes_failed == 2
    assert (moved.resubscribed, deaf.resubscribed) == (0, 1)  # only the deaf one is repaired
    assert stats.deaf_repairs == 1
