"""Bounded in bytes: the outage buffer, its paced flush and the bus's per-kind counters, on
in-memory brokers with a clock moved by hand."""

from __future__ import annotations

import pytest
from tests.unit.bus.test_bus_memory import MakeNode, advance, settle
from tests.unit.bus.test_bus_memory import clock as clock
from tests.unit.bus.test_bus_memory import make_node as make_node

from wsfleet.bus import memory
from wsfleet.bus.bus import BusUnavailableError
from wsfleet.bus.outage import REFUSE_NEW, OutageBuffer
from wsfleet.clock import ManualClock


def test_the_outage_buffer_refuses_a_publish_beyond_its_byte_bound_and_keeps_order() -> None:
    buffer: OutageBuffer[bytes] = OutageBuffer(100, 30.0, max_bytes=10, size_of=len)
    assert buffer.policy == REFUSE_NEW
    assert buffer.offer(b"aaaa", 0.0) and buffer.offer(b"bbbb", 0.0)
    assert not buffer.offer(b"ccc", 0.0)  # 11 bytes > 10
    assert buffer.offer(b"cc", 0.0) and buffer.bytes == 10 and buffer.refused == 1
    assert buffer.take(5) == [b"aaaa"] and buffer.bytes == 6
    assert buffer.take(1) == [b"bbbb"]  # at least one, whatever its size
    buffer.requeue_front([b"z"], 1.0)
    assert buffer.drain() == [b"z", b"cc"] and buffer.bytes == 0


async def test_publishes_beyond_the_byte_bound_fail_at_once_the_rest_arrive_in_order(
    make_node: MakeNode,
    clock: ManualClock,
) -> None:
    a = await make_node("a", ["m1"], outage_buffer_max_bytes=10_000)
    b = await make_node("b", ["m1"])
    memory.broker("m1").kill()
    await settle()
    pad = "x" * 3000
    kept = [
        a.bus.publish("ws:chat", {"n": i, "p": pad, "wsf": a.bus.meta()}, "r", want_result=True)
        for i in range(3)
    ]
    refused = a.bus.publish(
        "ws:chat", {"n": 3, "p": pad, "wsf": a.bus.meta()}, "r", want_result=True
    )
    await settle()
    assert refused is not None
    with pytest.raises(BusUnavailableError, match="buffer is full"):
        refused.result()
    assert a.bus.outage.bytes <= 10_000
    memory.broker("m1").restart()
    await advance(clock, 0.3)
    assert b.numbers() == [0, 1, 2]
    assert all(f is not None and f.result() == 2 for f in kept)


async def test_the_flush_after_an_outage_goes_in_paced_steps_and_keeps_order(
    make_node: MakeNode,
    clock: ManualClock,
) -> None:
    a = await make_node("a", ["m1"], outage_flush_bytes=5_000)
    b = await make_node("b", ["m1"])
    memory.broker("m1").kill()
    await settle()
    pad = "x" * 2000
    for i in range(10):
        a.bus.publish("ws:chat", {"n": i, "p": pad, "wsf": a.bus.meta()}, "r")
    a.send(10)  # a small one, behind them
    link = a.bus.links["memory://m1"]
    memory.broker("m1").restart()
    await advance(clock, 0.3)
    batches = link.batches
    assert b.numbers() == list(range(11))
    assert batches >= 5  # 2 messages (4 KB) per step, not one burst of 20 KB


async def test_bus_counters_are_keyed_by_channel_kind_never_by_channel_name(
    make_node: MakeNode,
) -> None:
    a = await make_node("a", ["m1"])
    b = await make_node("b", ["m1"])
    for i in range(50):
        b.bus.subscribe(f"ws:room-{i}")
        a.bus.publish(f"ws:room-{i}", {"n": i, "wsf": a.bus.meta()}, "r")
        a.bus.publish(f"anything-{i}", {"n": i, "wsf": a.bus.meta()}, "r")
    await settle()
    assert set(a.bus.stats.published_by_kind) == {"room", "custom"}
    assert set(b.bus.stats.received_by_kind) <= {"room", "custom", "inbox", "control"}
