"""Pure logic of connection state recovery: positions on the wire, what a session holds, which
entries a reconnect replays, and the client's bookkeeping."""

from __future__ import annotations

import orjson
import pytest

from wsfleet.bus.history import REFUSED, Entry, StreamState, parse_state
from wsfleet.client.recovery import RecoveryState
from wsfleet.server import Server, ServerSettings
from wsfleet.server.recovery import _missed
from wsfleet.server.recovery_session import (
    Mark,
    parse_positions,
    parse_session,
    room_tag,
    stamped,
)


def entries(*keys: str) -> tuple[Entry, ...]:
    return tuple(Entry(k, "{}", ()) for k in keys)


def test_a_stamped_frame_keeps_the_original_fields_and_adds_one() -> None:
    text = b'{"event":"tick","payload":{"n":1}}'
    out = stamped(text, "b", "ab.3")
    assert out is not None
    assert orjson.loads(out) == {"event": "tick", "payload": {"n": 1}, "wsfp": "b/ab.3"}
    assert stamped(b'"not an object"', "b", "ab.3") is None


def test_positions_from_the_query_are_checked() -> None:
    tag = room_tag("feed", "main")
    text = f"d/ab.1,b/ab.2,{tag}/cd.9,x/zz.1,d/no-dot,{'r' + 'g' * 16}/ab.1"
    assert parse_positions(text) == {"d": "ab.1", "b": "ab.2", tag: "cd.9"}
    assert parse_positions(None) == {}


def test_a_session_from_redis_is_trusted_for_nothing() -> None:
    mark = Mark("feed", "main", "e1", 4).dumps()
    tag = room_tag("feed", "main")
    reply = [b"id", b"u1", b"m:" + tag.encode(), mark, b"m:d", b"[1,2]", b"m:zz", mark]
    session = parse_session("t" * 20, reply)
    assert session is not None and session.socket_id == "u1"
    assert session.marks == {tag: Mark("feed", "main", "e1", 4)}
    assert parse_session("t" * 20, [b"m:d", mark]) is None
    assert parse_session("t" * 20, 42) is None


def test_replay_starts_after_the_position_or_the_mark() -> None:
    mark = Mark(None, None, "e1", 2)
    stream = StreamState("e1", 5, entries("a.1", "a.2", "a.3", "a.4", "a.5"))
    assert [e.key for e in _missed(stream, mark, "a.3")[0] or []] == ["a.4", "a.5"]
    assert [e.key for e in _missed(stream, mark, None)[0] or []] == ["a.3", "a.4", "a.5"]
    assert _missed(stream, mark, "a.9") == (None, "position not in history")
    assert _missed(StreamState("e2", 5, stream.entries), mark, "a.3") == (None, "epoch changed")
    trimmed = StreamState("e1", 9, entries("a.8", "a.9"))
    assert _missed(trimmed, mark, None) == (None, "history trimmed")


def test_a_malformed_history_reply_is_refused() -> None:
    def open_entry(data: bytes) -> Entry:
        return Entry(data.decode(), "{}", ()) if data.startswith(b"a.") else REFUSED

    ok = parse_state([b"e1", 2, [[b"1-0", [b"e", b"a.1"]], [b"2-0", [b"e", b"zz"]]]], open_entry)
    assert ok.entries == (Entry("a.1", "{}", ()), REFUSED)
    # an entry of another shape (an older version's k/f/x fields, anything written by hand)
    other = parse_state([b"e1", 1, [[b"1-0", [b"k", b"a.1", b"f", b"{}"]]]], open_entry)
    assert other.entries == (REFUSED,)
    for bad in (None, [b"e1", 2], [b"e1", 2, [[b"1-0"]]], [b"e1", 2, 3]):
        with pytest.raises(ValueError):
            parse_state(bad, open_entry)


def test_a_refused_entry_among_the_missed_ones_refuses_the_recovery() -> None:
    mark = Mark(None, None, "e1", 1)
    stream = StreamState("e1", 4, (*entries("a.1", "a.2"), REFUSED, *entries("a.4")))
    assert _missed(stream, mark, "a.1") == (None, "history entry refused")
    assert _missed(stream, mark, None) == (None, "history entry refused")
    before = StreamState("e1", 4, (REFUSED, *entries("a.2", "a.3", "a.4")))
    assert [e.key for e in _missed(before, mark, "a.3")[0] or []] == ["a.4"]


def test_the_client_keeps_positions_and_drops_a_message_it_already_has() -> None:
    state = RecoveryState()
    assert state.url("ws://h/ws?id=1") == "ws://h/ws?id=1&wsf_recover=1"
    assert state.on_event({"session": "s" * 24, "resumed": False}) is None
    frame = '{"event":"tick","payload":{"wsfp":"b/ff.1"},"wsfp":"b/ab.7"}'
    assert state.observe(frame) is False
    assert state.observe(frame) is True
    assert state.observe('{"event":"x","payload":{"wsfp":"b/ff.1"}}') is False
    assert state.positions == {"b": "ab.7"}
    assert (
        state.url("ws://h/ws") == f"ws://h/ws?wsf_recover=1&wsf_session={'s' * 24}&wsf_pos=b%2Fab.7"
    )
    info = state.on_event({"session": "s" * 24, "resumed": True, "recovered": False, "reason": "r"})
    assert info is not None and not info.recovered and info.reason == "r"
    assert state.positions == {}


def test_recovery_is_refused_without_a_fleet() -> None:
    with pytest.raises(ValueError, match="needs a fleet"):
        Server(ServerSettings(recovery=True))
