"""Pending acks and callback ids, on a manual clock (no event loop needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from wsfleet.client import AckTimeoutError, ConnectionClosedError, TooManyPendingAcksError
from wsfleet.client.acks import PendingAcks, format_callback_id, to_base36
from wsfleet.client.errors import ConnectorError
from wsfleet.client.testing import ManualClock

ID_PATTERN = re.compile(r"^[0-9a-z]+-[0-9a-z]{4}-[0-9a-z]+$")


class Results:
    def __init__(self) -> None:
        self.calls: list[tuple[ConnectorError | None, Any]] = []

    def __call__(self, error: ConnectorError | None, payload: Any) -> None:
        self.calls.append((error, payload))


def make(limit: int = 10) -> tuple[ManualClock, PendingAcks, list[Any]]:
    clock = ManualClock()
    invoked: list[Any] = []
    return clock, PendingAcks(clock, limit=limit, invoke=lambda fn: invoked.append(fn())), invoked


def test_base36() -> None:
    assert [to_base36(n) for n in (0, 1, 35, 36, 1295)] == ["0", "1", "z", "10", "zz"]
    with pytest.raises(ValueError):
        to_base36(-1)


def test_callback_id_format_matches_the_original() -> None:
    # spec §2.2: ${Date.now().toString(36)}-${4 random base36}-${counter.toString(36)}
    assert format_callback_id(1_748_000_000_000, "b5ou", 1) == "mb0q2g3k-b5ou-1"
    assert format_callback_id(0, "0000", 36) == "0-0000-10"


def test_ids_count_from_one_per_registry() -> None:
    _, acks, _ = make()
    ids = [acks.new_id() for _ in range(37)]
    assert all(ID_PATTERN.match(i) for i in ids)
    assert [i.rsplit("-", 1)[1] for i in ids[:2]] == ["1", "2"]
    assert ids[35].endswith("-10")  # 36 in base 36
    assert len(ids[0]) <= 64  # the server's limit


def test_resolve_settles_once_and_cancels_timers() -> None:
    clock, acks, _ = make()
    results = Results()
    cid = acks.add(
        results, timeout=5.0, timeout_text="T: ", on_pending=lambda: None, pending_timeout=0.1
    )
    assert acks.resolve(cid, {"ok": 1})
    assert results.calls == [(None, {"ok": 1})]
    assert not acks.resolve(cid, "again")  # a duplicate ack is ignored
    assert clock.active_timers() == []
    assert len(acks) == 0


def test_timeout_fails_with_the_original_message() -> None:
    clock, acks, _ = make()
    results = Results()
    cid = acks.add(results, timeout=5.0, timeout_text="Is callback timeout: ")
    clock.advance(4.999)
    assert results.calls == []
    clock.advance(0.001)
    [(error, payload)] = results.calls
    assert isinstance(error, AckTimeoutError) and isinstance(error, TimeoutError)
    assert error.to_dict() == {
        "error": f"Is callback timeout: {cid}",
        "errorCode": "CALLBACK_TIMEOUT",
    }
    assert payload is None
    assert not acks.resolve(cid, "late")


def test_on_pending_runs_once_before_the_timeout() -> None:
    clock, acks, invoked = make()
    calls: list[str] = []
    acks.add(
        Results(),
        timeout=1.0,
        timeout_text="T: ",
        on_pending=lambda: calls.append("pending"),
        pending_timeout=0.1,
    )
    clock.advance(0.1)
    assert calls == ["pending"]
    clock.advance(0.9)
    assert calls == ["pending"]
    assert len(invoked) == 1


@pytest.mark.parametrize("pending_timeout", [1.0, 2.0])
def test_on_pending_needs_a_delay_shorter_than_the_timeout(pending_timeout: float) -> None:
    clock, acks, _ = make()
    calls: list[str] = []
    acks.add(
        Results(),
        timeout=1.0,
        timeout_text="T: ",
        on_pending=lambda: calls.append("pending"),
        pending_timeout=pending_timeout,
    )
    clock.advance(3.0)
    assert calls == []


def test_on_pending_does_not_run_after_the_ack() -> None:
    clock, acks, _ = make()
    calls: list[str] = []
    cid = acks.add(
        Results(),
        timeout=1.0,
        timeout_text="T: ",
        on_pending=lambda: calls.append("pending"),
        pending_timeout=0.5,
    )
    acks.resolve(cid, None)
    clock.advance(2.0)
    assert calls == []


def test_fail_all_settles_every_entry_at_once() -> None:
    clock, acks, _ = make()
    results = Results()
    ids = [acks.add(results, timeout=5.0, timeout_text="T: ") for _ in range(3)]
    assert acks.fail_all(lambda cid: ConnectionClosedError(1006, "", cid)) == 3
    assert [e.callback_id for e, _ in results.calls if isinstance(e, ConnectionClosedError)] == ids
    assert all(e is not None and e.error_code == "WS_CLOSED" for e, _ in results.calls)
    assert clock.active_timers() == []


def test_limit() -> None:
    _, acks, _ = make(limit=2)
    for _ in range(2):
        acks.add(Results(), timeout=1.0, timeout_text="T: ")
    with pytest.raises(TooManyPendingAcksError) as info:
        acks.add(Results(), timeout=1.0, timeout_text="T: ")
    assert info.value.to_dict()["errorCode"] == "TOO_MANY_PENDING_ACKS"


def test_discard_forgets_without_settling() -> None:
    clock, acks, _ = make()
    results = Results()
    cid = acks.add(results, timeout=1.0, timeout_text="T: ")
    acks.discard(cid)
    clock.advance(2.0)
    assert results.calls == []
    assert cid not in acks


def test_a_given_id_must_be_new() -> None:
    _, acks, _ = make()
    acks.add(Results(), callback_id="x", timeout=1.0, timeout_text="T: ")
    with pytest.raises(ValueError):
        acks.add(Results(), callback_id="x", timeout=1.0, timeout_text="T: ")
