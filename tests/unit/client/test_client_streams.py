"""``EventStream``: bounded, drop-oldest, ends with the connector."""

from __future__ import annotations

import asyncio

import pytest

from wsfleet.client.streams import EventStream


def make(
    maxsize: int = 3, names: frozenset[str] | None = None
) -> tuple[EventStream, list[EventStream]]:
    closed: list[EventStream] = []
    return EventStream(names, maxsize, closed.append), closed


async def collect(stream: EventStream) -> list[tuple[str, object]]:
    return [item async for item in stream]


async def test_overflow_drops_the_oldest_and_counts() -> None:
    stream, _ = make(maxsize=3)
    results = [stream.push("e", n) for n in range(5)]
    assert results == [True, True, True, False, False]
    assert stream.dropped == 2
    stream.end()
    assert await collect(stream) == [("e", 2), ("e", 3), ("e", 4)]


async def test_reader_waits_for_the_next_event() -> None:
    stream, _ = make()
    reader = asyncio.ensure_future(stream.__anext__())

    async def push() -> None:  # runs after the reader started waiting (tasks run in order)
        assert not reader.done()
        stream.push("e", 1)

    await asyncio.gather(asyncio.ensure_future(push()), reader)
    assert reader.result() == ("e", 1)


async def test_end_wakes_a_waiting_reader() -> None:
    stream, _ = make()
    reader = asyncio.ensure_future(collect(stream))

    async def end() -> None:
        assert not reader.done()
        stream.end()

    await asyncio.wait_for(asyncio.gather(asyncio.ensure_future(end()), reader), 1)
    assert reader.result() == []


async def test_close_discards_and_unregisters() -> None:
    stream, closed = make()
    stream.push("e", 1)
    async with stream:
        pass
    assert closed == [stream]
    assert await collect(stream) == []
    assert not stream.wants("e")


def test_name_filter() -> None:
    stream, _ = make(names=frozenset({"a"}))
    assert stream.wants("a") and not stream.wants("b")


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make(maxsize=0)
