"""The bus's ordering, failover, admission, dedup and outage logic on in-memory brokers, with a
clock moved by hand: several nodes in one process, no Redis, milliseconds per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from wsfleet.bus import memory
from wsfleet.bus.bus import Bus, BusUnavailableError
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.settings import FleetSettings
from wsfleet.bus.switching import REORDER_GUARD, AdmissionState
from wsfleet.clock import ManualClock


@dataclass
class Node:
    bus: Bus
    got: list[tuple[str, Any]] = field(default_factory=list)
    health: list[tuple[bool, str]] = field(default_factory=list)

    def on_bus_message(self, channel: str, message: dict[str, Any]) -> None:
        self.got.append((channel, message.get("n")))

    def on_bus_health(self, healthy: bool, info: dict[str, Any]) -> None:
        self.health.append((healthy, info["type"]))

    def numbers(self, channel: str = "ws:chat") -> list[Any]:
        return [n for c, n in self.got if c == channel]

    def send(self, n: int, key: str = "room", channel: str = "ws:chat") -> Any:
        return self.bus.publish(channel, {"n": n, "wsf": self.bus.meta()}, key, want_result=True)


async def settle(turns: int = 20) -> None:
    """Let every reply and message already posted by the brokers arrive (loop turns only)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def advance(clock: ManualClock, seconds: float, step: float = 0.005) -> None:
    """Move the clock in small steps (and a hair beyond ``seconds``, so that a timer due at
    exactly that time fires despite float sums), letting the loop run between them."""
    end = clock.now() + seconds + 1e-6
    while clock.now() < end:
        clock.advance(min(step, end - clock.now()))
        await settle()


async def advance_until(
    clock: ManualClock, predicate: Callable[[], bool], limit: float = 5.0
) -> None:
    """Move the clock 1 ms at a time until ``predicate()`` holds (at most ``limit`` seconds)."""
    end = clock.now() + limit
    while not predicate():
        assert clock.now() < end, "the condition never held"
        clock.advance(0.001)
        await settle()


MakeNode = Callable[..., Any]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_node(clock: ManualClock) -> AsyncIterator[MakeNode]:
    memory.forget_brokers()
    made: list[Node] = []

    async def make(name: str, brokers: list[str], **options: Any) -> Node:
        settings = FleetSettings(
            redis=tuple(RedisNode.parse(f"memory://{b}") for b in brokers),
            server_name=name,
            **{"command_timeout": 0.5, "hot_add_grace": 2.0, "drain_grace": 0.2, **options},
        )
        node = Node(bus=None)  # type: ignore[arg-type]
        node.bus = Bus(settings, node, clock=clock)
        for b in brokers:
            memory.broker(b, clock)
        node.bus.subscribe("ws:chat")
        await node.bus.start()
        await settle()
        await advance(clock, REORDER_GUARD)  # a second broker is admitted through a switch
        assert len(node.bus.usable_links()) == len(brokers)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.bus.aclose()
    memory.forget_brokers()


async def test_nodes_in_one_process_talk_through_a_shared_memory_broker(
    make_node: MakeNode,
) -> None:
    a = await make_node("a", ["m1"])
    b = await make_node("b", ["m1"])
    assert a.bus.usable_links() and b.bus.usable_links()
    futures = [a.send(i) for i in range(5)]
    await settle()
    assert [f.result() for f in futures] == [2] * 5  # both nodes subscribe ws:chat
    assert b.numbers() == [0, 1, 2, 3, 4]
    assert a.numbers() == []  # its own echo is dropped
    assert a.bus.stats.self_echo_dropped == 5


async def test_a_frozen_broker_fails_over_and_its_late_copies_are_dropped_as_duplicates(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1", "m2"])
    b = await make_node("b", ["m1", "m2"])
    through = a.bus.link_for_key("room")
    assert through is not None
    frozen = memory.broker(through.node.host)
    frozen.freeze()
    futures = [a.send(i) for i in range(10)]
    await settle()
    assert b.numbers() == []  # stuck in the frozen broker
    await advance(clock, 0.5)  # command_timeout on the manual clock
    assert not through.publisher_healthy
    assert b.numbers() == list(range(10))  # re-routed through the other broker, in order
    assert all(f.done() and not f.exception() for f in futures)
    frozen.thaw()  # the frozen broker runs the old publishes after all
    await settle()
    assert b.numbers() == list(range(10))
    assert b.bus.stats.duplicates_dropped == 10
    assert a.bus.stats.publish_retries == 10 and a.bus.stats.publish_failures == 0


async def test_a_returning_broker_takes_keys_back_only_after_the_reorder_guard(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1", "m2"])
    b = await make_node("b", ["m1", "m2"])
    a.bus.peers = lambda: ["a", "b"]
    owner = a.bus.link_for_key("room")
    assert owner is not None
    broken = memory.broker(owner.node.host)
    broken.kill()
    await settle()
    a.send(0)  # goes through the other broker at once
    await settle()
    assert b.numbers() == [0]
    broken.restart()
    # both nodes reconnect (backoff timers on the manual clock); a's link is admitted once b
    # listens on it again, through a switch that holds new publishes in order
    await advance_until(
        clock, lambda: a.bus.admissions.state(owner.key) is AdmissionState.SWITCHING
    )
    assert memory.broker(owner.node.host).numsub(b"csbp:wsfleet:node:b") == 1
    a.send(1)
    a.send(2)
    await settle()
    assert b.numbers() == [0] and len(a.bus.outage) == 2
    await advance(clock, REORDER_GUARD)
    assert owner.admitted and a.bus.link_for_key("room") is owner
    assert b.numbers() == [0, 1, 2]
    a.send(3)
    await settle()
    assert b.numbers() == [0, 1, 2, 3]


async def test_admission_waits_until_every_peer_listens_on_the_returning_broker(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1", "m2"])
    a.bus.peers = lambda: ["a", "b"]
    m2 = memory.broker("m2")
    m2.kill()
    await settle()
    m2.restart()
    link = a.bus.links["memory://m2"]
    await advance_until(
        clock, lambda: a.bus.admissions.state(link.key) is AdmissionState.AWAITING_PEERS
    )
    assert link.is_subscribed(a.bus.wanted_channels())
    await advance(clock, 1.0)  # node b does not listen on m2: NUMSUB asked again, still 0
    assert not link.admitted and m2.numsub(b"csbp:wsfleet:node:b") == 0
    b = await make_node("b", ["m2"])  # now it does
    await advance_until(clock, lambda: link.admitted, limit=1.0)
    a.send(7, key="through-m2")
    a.bus.links["memory://m1"].publishable = False  # only m2 is left to carry it
    a.send(8, key="through-m2")
    await settle()
    assert 8 in b.numbers()


async def test_admission_gives_up_waiting_for_silent_peers_after_the_grace(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1"])
    memory.broker("m1").kill()
    await settle()
    a.bus.peers = lambda: ["a", "ghost"]  # listed by the registry, never subscribes anywhere
    memory.broker("m1").restart()
    await advance(clock, 0.3)
    link = a.bus.links["memory://m1"]
    assert link.publisher_healthy and not link.admitted
    await advance(clock, 2.0)  # hot_add_grace
    assert link.admitted


async def test_the_outage_buffer_keeps_order_refuses_when_full_and_expires_on_the_clock(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1"], outage_buffer_size=3, outage_buffer_max_age=5.0)
    b = await make_node("b", ["m1"])
    memory.broker("m1").kill()
    await settle()
    kept = [a.send(i) for i in range(3)]
    refused = a.send(99)
    await settle()
    with pytest.raises(BusUnavailableError, match="buffer is full"):
        refused.result()
    memory.broker("m1").restart()
    await advance(clock, 0.3)
    assert b.numbers() == [0, 1, 2]
    assert all(f.result() == 2 for f in kept)

    memory.broker("m1").kill()
    await settle()
    late = a.send(3)
    await advance(clock, 5.1, step=0.5)  # reconnects keep failing; the entry expires
    with pytest.raises(BusUnavailableError, match="came back in time"):
        late.result()
    assert a.bus.stats.outage_expired == 1 and len(a.bus.outage) == 0


async def test_hot_remove_moves_keys_without_loss_and_closes_the_link(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1", "m2"])
    b = await make_node("b", ["m1", "m2"])
    owner = a.bus.link_for_key("room")
    assert owner is not None
    removing = asyncio.ensure_future(a.bus.remove_redis_node(owner.key))
    a.send(0)  # held during the switch
    await settle()
    await advance(clock, REORDER_GUARD + 0.2)  # guard, then drain_grace
    assert await removing
    assert owner.closed and owner.key not in a.bus.links
    a.send(1)
    await settle()
    assert b.numbers() == [0, 1]


async def test_a_closed_bus_takes_no_new_broker_and_leaves_no_connection(
    make_node: MakeNode,
) -> None:
    a = await make_node("a", ["m1"])
    m2 = memory.broker("m2")
    adding = asyncio.ensure_future(a.bus.add_redis_node(RedisNode.parse("memory://m2")))
    await settle(2)
    await a.bus.aclose()
    assert await adding is False
    assert await a.bus.add_redis_node(RedisNode.parse("memory://m2")) is False
    assert m2.client_count == 0 and memory.broker("m1").client_count == 0
    assert len(a.bus.tasks) == 0


async def test_wait_ready_and_flush_wake_on_events_not_on_polls(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1"])
    memory.broker("m1").freeze()
    a.send(1)
    await settle()
    flushed = asyncio.ensure_future(a.bus.flush(10.0))
    await settle()
    assert not flushed.done()
    memory.broker("m1").thaw()
    await settle()
    assert flushed.done() and flushed.result() is True
    await a.bus.wait_ready(0.0)  # ready already: no waiting at all


async def test_wait_ready_returns_as_soon_as_the_first_link_is_admitted(
    clock: ManualClock,
) -> None:
    memory.forget_brokers()
    memory.broker("r1", clock)
    bus = Bus(
        FleetSettings(redis=(RedisNode.parse("memory://r1"),), server_name="a"),
        lambda channel, message: None,
        clock=clock,
    )
    try:
        await bus.start()
        await asyncio.wait_for(bus.wait_ready(1.0), 1.0)  # the manual clock never moves
        assert bus.usable_links()
    finally:
        await bus.aclose()
        memory.forget_brokers()
