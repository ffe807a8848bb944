"""TaskOwner: strong references, failures logged when they happen, cancel and await on close,
no new work once closing."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings

import pytest

from wsfleet.tasks import TaskOwner


async def test_close_cancels_and_awaits_every_task() -> None:
    owner = TaskOwner("test")
    stopped: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append(name)

    tasks = [owner.spawn(forever(f"t{i}"), f"t{i}") for i in range(3)]
    await asyncio.sleep(0)
    assert len(owner) == 3
    await owner.aclose()
    assert sorted(stopped) == ["t0", "t1", "t2"]
    assert all(t is not None and t.cancelled() for t in tasks)
    assert len(owner) == 0


async def test_a_task_started_while_closing_is_stopped_too() -> None:
    owner = TaskOwner("test")

    async def spawner() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            owner.spawn(asyncio.sleep(10), "late")  # refused: the owner is closing

    owner.spawn(spawner(), "spawner")
    await asyncio.sleep(0)
    await owner.aclose()
    assert len(owner) == 0


async def test_refused_work_is_closed_not_leaked() -> None:
    owner = TaskOwner("test")
    await owner.aclose()
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        assert owner.spawn(work(), "refused") is None
        gc.collect()
    assert ran == []
    owner.reopen()
    task = owner.spawn(work(), "accepted")
    assert task is not None
    await task
    assert ran == [1]


async def test_a_failure_is_logged_when_it_happens(caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("things")

    async def fail() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="wsfleet.tasks"):
        task = owner.spawn(fail(), "failing")
        assert task is not None
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    assert "things: task failing failed" in caplog.text and "boom" in caplog.text
    assert len(owner) == 0
