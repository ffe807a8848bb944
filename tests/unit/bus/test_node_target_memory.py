"""Hot-plug that converges: the last Redis node list wins, a removal is cancelled when its node is
listed again, no list may leave zero nodes; in-memory brokers, a clock moved by hand."""

from __future__ import annotations

from tests.unit.bus.test_bus_memory import MakeNode, Node, advance
from tests.unit.bus.test_bus_memory import clock as clock
from tests.unit.bus.test_bus_memory import make_node as make_node

from wsfleet.bus import memory
from wsfleet.bus.node_target import NodeTarget
from wsfleet.bus.nodes import RedisNode
from wsfleet.clock import ManualClock


def nodes(*names: str) -> list[RedisNode]:
    return [RedisNode.parse(f"memory://{n}") for n in names]


def keys(node: Node) -> set[str]:
    return set(node.bus.links)


async def stream(a: Node, clock: ManualClock, start: int, seconds: float) -> int:
    """Send one message per 10 ms of the clock for ``seconds``; returns the next number."""
    n = start
    end = clock.now() + seconds
    while clock.now() < end:
        a.send(n)
        n += 1
        await advance(clock, 0.01)
    return n


async def test_a_rollback_within_the_drain_grace_cancels_the_removal_and_loses_nothing(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1", "m2"], drain_grace=1.0)
    b = await make_node("b", ["m1", "m2"], drain_grace=1.0)
    targets = [NodeTarget(x.bus) for x in (a, b)]
    for t in targets:
        assert t.set(nodes("m2"))
    n = await stream(a, clock, 0, 0.3)
    assert set(a.bus.draining) == {"memory://m1"}
    for t in targets:
        t.set(nodes("m1", "m2"))  # rollback, within the grace
    n = await stream(a, clock, n, 2.0)  # beyond the grace
    for x in (a, b):
        assert keys(x) == {"memory://m1", "memory://m2"} and not x.bus.draining
        assert all(link.publishable and not link.closed for link in x.bus.links.values())
    assert b.numbers() == list(range(n))


async def test_set_set_rollback_in_quick_succession_ends_in_the_last_list(
    make_node: MakeNode, clock: ManualClock
) -> None:
    memory.broker("m3", clock)
    a = await make_node("a", ["m1", "m2"], drain_grace=1.0)
    b = await make_node("b", ["m1", "m2"], drain_grace=1.0)
    targets = [NodeTarget(x.bus) for x in (a, b)]
    n = 0
    for wanted in (("m3",), ("m2", "m3"), ("m1", "m2")):
        for t in targets:
            t.set(nodes(*wanted))
        n = await stream(a, clock, n, 0.2)
    n = await stream(a, clock, n, 3.0)
    for x, t in zip((a, b), targets, strict=True):
        assert keys(x) == {"memory://m1", "memory://m2"} and not x.bus.draining
        assert await t.settled(0)
    assert b.numbers() == list(range(n))


async def test_a_change_that_would_leave_no_redis_node_is_refused_and_counted(
    make_node: MakeNode, clock: ManualClock
) -> None:
    a = await make_node("a", ["m1", "m2"])
    target = NodeTarget(a.bus)
    assert not target.set([])
    assert target.remove("memory://m1")
    assert not target.remove("memory://m2")  # the last one
    assert target.refused == 2
    await advance(clock, 1.0)
    assert keys(a) == {"memory://m2"}
    assert target.add(nodes("m1")[0])
    await advance(clock, 1.0)
    assert keys(a) == {"memory://m1", "memory://m2"}
