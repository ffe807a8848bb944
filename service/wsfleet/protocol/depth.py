"""How deeply a decoded JSON value nests arrays and objects.

orjson decodes up to 1024 levels but encodes at most 254, so a payload nested a few hundred levels
deep could be received and never acknowledged. The node refuses frames whose payload nests deeper
than ``ServerSettings.max_json_depth``; the check is free for ordinary frames (a text with fewer
brackets than the limit cannot nest deeper) and walks the value only otherwise.
"""

from __future__ import annotations

from typing import Any, Final


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` has more than ``limit`` levels of arrays/objects (``[]`` is one)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return False


#: Objects with at most this many members are looked at before the text is counted.
_FEW: Final = 8


def too_deep(text: str | bytes, payload: Any, limit: int) -> bool:
    """The payload decoded from ``text`` nests more than ``limit`` levels."""
    kind = type(payload)
    if kind is dict and len(payload) <= _FEW:  # the usual payload: a small flat object
        for value in payload.values():
            if type(value) is dict or type(value) is list:
                break
        else:
            return limit < 1
    elif kind is not dict and kind is not list:  # a scalar nests no level
        return False
    if isinstance(text, str):
        brackets = text.count("[") + text.count("{")
    else:
        brackets = text.count(b"[") + text.count(b"{")
    if brackets <= limit:
        return False
    return nesting_exceeds(payload, limit)
