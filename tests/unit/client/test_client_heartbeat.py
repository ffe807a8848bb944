"""The heartbeat timers on a manual clock (no event loop needed)."""

from __future__ import annotations

import pytest

from wsfleet.client.heartbeat import Heartbeat
from wsfleet.client.testing import ManualClock


class Calls:
    def __init__(self) -> None:
        self.log: list[tuple[str, float | None]] = []


def make(interval: float = 10.0, pong_timeout: float = 2.0) -> tuple[ManualClock, Heartbeat, Calls]:
    clock = ManualClock()
    calls = Calls()
    heartbeat = Heartbeat(
        clock,
        interval=interval,
        pong_timeout=pong_timeout,
        on_ping=lambda: calls.log.append(("ping", None)),
        on_pong=lambda ms: calls.log.append(("pong", ms)),
        on_timeout=lambda: calls.log.append(("timeout", None)),
    )
    return clock, heartbeat, calls


def test_ping_after_the_interval_then_timeout() -> None:
    clock, hb, calls = make()
    hb.start()
    clock.advance(9.999)
    assert calls.log == []
    clock.advance(0.001)
    assert calls.log == [("ping", None)]
    assert hb.is_waiting_for_pong()
    clock.advance(2.0)
    assert calls.log == [("ping", None), ("timeout", None)]


def test_pong_reports_latency_in_ms_and_rearms() -> None:
    clock, hb, calls = make()
    hb.start()
    clock.advance(10.0)
    clock.advance(0.25)
    hb.pong_received()
    assert calls.log == [("ping", None), ("pong", pytest.approx(250.0))]
    clock.advance(5.0)  # no timeout: the pong timer was cancelled
    assert [name for name, _ in calls.log] == ["ping", "pong"]
    clock.advance(5.0)  # the next ping, 10 s after the pong
    assert [name for name, _ in calls.log] == ["ping", "pong", "ping"]


def test_stop_cancels_every_timer() -> None:
    clock, hb, calls = make()
    hb.start()
    clock.advance(10.0)
    hb.stop()
    assert clock.active_timers() == []
    clock.advance(100.0)
    assert calls.log == [("ping", None)]
    hb.pong_received()  # ignored when stopped
    assert calls.log == [("ping", None)]


def test_set_interval_immediate_restarts_a_waiting_ping() -> None:
    clock, hb, calls = make()
    hb.start()
    clock.advance(3.0)
    hb.set_interval(1.0, immediate=True)
    clock.advance(1.0)
    assert calls.log == [("ping", None)]


def test_set_interval_not_immediate_applies_to_the_next_ping() -> None:
    clock, hb, calls = make()
    hb.start()
    hb.set_interval(1.0)
    clock.advance(9.999)
    assert calls.log == []
    clock.advance(0.001)
    hb.pong_received()
    clock.advance(1.0)
    assert [name for name, _ in calls.log] == ["ping", "pong", "ping"]


def test_a_ping_listener_that_stops_prevents_the_pong_timer() -> None:
    clock = ManualClock()
    log: list[str] = []
    holder: list[Heartbeat] = []

    def on_ping() -> None:
        log.append("ping")
        holder[0].stop()

    hb = Heartbeat(
        clock,
        interval=1.0,
        pong_timeout=1.0,
        on_ping=on_ping,
        on_pong=lambda ms: log.append("pong"),
        on_timeout=lambda: log.append("timeout"),
    )
    holder.append(hb)
    hb.start()
    clock.advance(5.0)
    assert log == ["ping"]
    assert clock.active_timers() == []
