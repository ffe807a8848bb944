"""The JSON nesting limit (pure)."""

from __future__ import annotations

import orjson
import pytest

from wsfleet.protocol.depth import nesting_exceeds, too_deep


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_is_counted_in_levels_of_arrays_and_objects() -> None:
    assert not nesting_exceeds(1, 0)
    assert not nesting_exceeds(nested(64), 64)
    assert nesting_exceeds(nested(65), 64)
    assert nesting_exceeds({"a": [1, {"b": nested(63)}]}, 64)
    assert not nesting_exceeds({"a": [1, {"b": nested(61)}]}, 64)


def test_brackets_inside_strings_only_cost_a_walk() -> None:
    text = orjson.dumps({"event": "x", "payload": "[" * 500})
    assert not too_deep(text, "[" * 500, 64)
    assert not too_deep(text.decode(), "[" * 500, 64)
    deep_text = "[" * 300 + "1" + "]" * 300  # orjson reads 1024 levels, writes 254
    assert too_deep(deep_text, orjson.loads(deep_text), 64)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        7,
        "[[[[",
        {},
        {"a": 1, "b": "{{{{"},
        {"a": [1]},
        {str(i): i for i in range(20)},
        {"a": {"b": {"c": 1}}},
        [[[]]],
        [1, 2, "]]]"],
    ],
)
@pytest.mark.parametrize("limit", [0, 1, 2, 3])
def test_too_deep_agrees_with_walking_the_value(payload: object, limit: int) -> None:
    text = orjson.dumps({"event": "e", "payload": payload}).decode()
    assert too_deep(text, payload, limit) == nesting_exceeds(payload, limit)
