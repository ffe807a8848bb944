"""The fleet view's merge of the changes each node reports (pure logic)."""

from __future__ import annotations

from wsfleet.ops.fleet_view import _merged_events


def test_a_change_seen_by_several_nodes_is_listed_once_with_who_saw_it() -> None:
    nodes = [
        {
            "name": "a",
            "events": [
                {"t": 100.0, "kind": "redis-added", "subject": "redis://r2:6379/0"},
                {"t": 90.0, "kind": "node-joined", "subject": "b"},
            ],
        },
        {
            "name": "b",
            "events": [
                {"t": 101.5, "kind": "redis-added", "subject": "redis://r2:6379/0"},
                {"t": 130.0, "kind": "drain", "subject": "b"},
            ],
        },
    ]
    assert _merged_events(nodes) == [
        {"t": 130.0, "kind": "drain", "subject": "b", "seenBy": ["b"]},
        {"t": 100.0, "kind": "redis-added", "subject": "redis://r2:6379/0", "seenBy": ["a", "b"]},
        {"t": 90.0, "kind": "node-joined", "subject": "b", "seenBy": ["a"]},
    ]


def test_the_same_change_much_later_is_a_new_one_and_junk_is_skipped() -> None:
    nodes = [
        {
            "name": "a",
            "events": [
                {"t": 100.0, "kind": "node-left", "subject": "b"},
                {"t": 200.0, "kind": "node-left", "subject": "b"},
                {"t": "soon", "kind": "drain", "subject": "x"},
                {"kind": 5, "subject": "x", "t": 1.0},
                "not an event",
            ],
        },
        {"name": "c", "events": "not a list"},
    ]
    assert [e["t"] for e in _merged_events(nodes)] == [200.0, 100.0]
