"""Drift of owned objects: did someone change what the operator applied?

After each server-side apply the operator keeps, per object, the API server's answer restricted
to the fields it sent (:func:`project`): defaults, status and other managers' fields fall away,
and values come back in the API server's own spelling (quantities, int-or-string). An event on
the object later is compared the same way; any difference is a hand edit (or a deletion) to
repair. A repair that changes nothing produces no new event, so this cannot loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MISSING = "<missing>"


def project(actual: Any, shape: Any) -> Any:
    """``actual`` restricted to the paths present in ``shape`` (absent ones become MISSING).

    Lists are compared whole when their lengths differ (an item was added or removed)."""
    if isinstance(shape, Mapping):
        if not isinstance(actual, Mapping):
            return actual
        return {k: project(actual[k], v) if k in actual else MISSING for k, v in shape.items()}
    if isinstance(shape, list):
        if not isinstance(actual, list) or len(actual) != len(shape):
            return actual
        return [project(a, s) for a, s in zip(actual, shape, strict=True)]
    return actual


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return str(obj.get("kind")), str((obj.get("metadata") or {}).get("name"))


class Applied:
    """What was last applied per owned object, as the API server stored it."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], tuple[Mapping[str, Any], Any]] = {}

    def record(self, desired: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        self._objects[object_key(desired)] = (desired, project(result, desired))

    def drifted(self, kind: str, actual: Mapping[str, Any]) -> bool | None:
        """True when ``actual`` differs from what was applied; None when nothing was applied
        by this operator run (the resume handler re-applies everything anyway)."""
        name = str((actual.get("metadata") or {}).get("name"))
        known = self._objects.get((kind, name))
        if known is None:
            return None
        desired, canonical = known
        return bool(project(actual, desired) != canonical)
