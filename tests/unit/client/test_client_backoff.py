"""The reconnect schedule of spec §3.5, as pure code: no event loop, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsfleet.client.backoff import ReconnectSchedule, reconnect_delay

DEFAULTS = {"threshold": 3, "fast_interval": 3.0, "max_interval": 120.0}


def delays(random_value: float, attempts: int, **settings: float) -> list[float]:
    options = {**DEFAULTS, **settings}
    return [
        reconnect_delay(
            repeat,
            threshold=int(options["threshold"]),
            fast_interval=options["fast_interval"],
            max_interval=options["max_interval"],
            random=lambda: random_value,
        )
        for repeat in range(1, attempts + 1)
    ]


def test_delay_table_with_defaults_and_no_jitter() -> None:
    # spec §3.5 table, lower bounds (random() = 0)
    assert delays(0.0, 10) == [3.0, 3.0, 3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 120.0, 120.0]


def test_delay_table_with_defaults_and_maximal_jitter() -> None:
    # spec §3.5 table, upper bounds: 6000-8999 ms, 12000-14999 ms, ... then capped at 120000
    top = 0.9999999
    assert delays(top, 10) == [3.0, 3.0, 3.0, 8.999, 14.999, 26.999, 50.999, 98.999, 120.0, 120.0]


def test_observed_sequence_then_repeat_limit() -> None:
    # spec §3.5 "observed": interval 100 ms, threshold 2, max 1000 ms, limit 6:
    # 100, 100, 2xx, 4xx, 8xx, 1000, then repeat-limit 6
    schedule = ReconnectSchedule(
        threshold=2, fast_interval=0.1, max_interval=1.0, limit=6, random=lambda: 0.57
    )
    got = [schedule.next_delay() for _ in range(6)]
    assert got == [0.1, 0.1, 0.257, 0.457, 0.857, 1.0]
    assert schedule.repeat == 6
    assert schedule.is_exhausted()
    assert schedule.next_delay() is None
    assert schedule.repeat == 6  # a refused attempt is not counted


@pytest.mark.parametrize("random_value", [0.0, 0.3, 0.999])
def test_observed_sequence_ranges(random_value: float) -> None:
    got = delays(random_value, 6, threshold=2, fast_interval=0.1, max_interval=1.0)
    assert got[:2] == [0.1, 0.1]
    assert 0.2 <= got[2] < 0.3
    assert 0.4 <= got[3] < 0.5
    assert 0.8 <= got[4] < 0.9
    assert got[5] == 1.0


def test_delay_is_floored_to_the_millisecond() -> None:
    assert delays(0.12345678, 4)[3] == 6.37  # floor(6000 + 370.37) ms
    # 2 * 0.1 + 0.7 * 0.1 is 0.27 in decimal, 0.27000000000000002 in binary: still 270 ms
    assert delays(0.7, 3, threshold=2, fast_interval=0.1, max_interval=1.0)[2] == 0.27


def test_delay_never_below_the_fast_interval() -> None:
    # a max below the fast interval: the original still waits the fast interval
    assert delays(0.0, 5, max_interval=1.0)[4] == 3.0


def test_zero_threshold_backs_off_from_the_first_attempt() -> None:
    assert delays(0.0, 3, threshold=0) == [6.0, 12.0, 24.0]


def test_repeat_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        reconnect_delay(0, threshold=3, fast_interval=3.0, max_interval=120.0)


def test_undo_and_reset() -> None:
    schedule = ReconnectSchedule(
        threshold=1, fast_interval=1.0, max_interval=60.0, random=lambda: 0
    )
    assert [schedule.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    schedule.undo()
    assert schedule.repeat == 2
    assert schedule.next_delay() == 4.0  # the replaced attempt keeps its number
    schedule.reset()
    assert schedule.repeat == 0
    assert schedule.next_delay() == 1.0
    schedule.reset()
    schedule.undo()  # never below zero
    assert schedule.repeat == 0


def test_unlimited_schedule_is_never_exhausted() -> None:
    schedule = ReconnectSchedule(threshold=3, fast_interval=3.0, max_interval=120.0)
    for _ in range(100):
        assert schedule.next_delay() is not None
    assert schedule.repeat == 100


def test_limit_zero_refuses_at_once() -> None:
    schedule = ReconnectSchedule(threshold=3, fast_interval=3.0, max_interval=120.0, limit=0)
    assert schedule.next_delay() is None


@given(
    repeat=st.integers(min_value=1, max_value=200),
    threshold=st.integers(min_value=0, max_value=10),
    fast=st.floats(min_value=0.001, max_value=60.0),
    cap=st.floats(min_value=0.001, max_value=3600.0),
    jitter=st.floats(min_value=0.0, max_value=0.9999999),
)
def test_delay_bounds(repeat: int, threshold: int, fast: float, cap: float, jitter: float) -> None:
    delay = reconnect_delay(
        repeat, threshold=threshold, fast_interval=fast, max_interval=cap, random=lambda: jitter
    )
    if repeat <= threshold:
        assert delay == fast
    else:
        # floored to the millisecond: may sit up to 1 ms below the bounds
        assert delay >= min(fast, max(fast, cap)) - 0.001
        assert delay <= max(cap, fast) + 1e-9
        assert round(delay * 1000, 6) == int(round(delay * 1000, 6))
