"""Listener tables with ``on`` / ``once`` / ``off`` and tags, as in the original framework.

``off(event)`` removes every listener of the event, ``off(event, fn)`` that function, and
``off(event, tag)`` every listener registered with that tag (a ``str`` or ``int``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
Tag = str | int


@dataclass(slots=True)
class Listener(Generic[F]):
    fn: F
    once: bool
    tag: Tag | None
    #: What a client-event handler receives for a frame without ``payload`` (see ``Server.on``).
    missing: Any = None


class ListenerTable(Generic[F]):
    """Listeners by event name. Snapshots are returned, so listeners may change the table."""

    __slots__ = ("_by_event", "_max_per_event", "_with_once")

    def __init__(self, max_per_event: int = 10_000) -> None:
        self._by_event: dict[str, list[Listener[F]]] = {}
        self._max_per_event = max_per_event
        # Events with at least one ``once`` listener, so that ``take`` (called for every event)
        # need not scan the listeners.
        self._with_once: set[str] = set()

    def add(
        self, event: str, fn: F, *, once: bool = False, tag: Tag | None = None, missing: Any = None
    ) -> None:
        if not _is_name(event):
            raise TypeError(f"event name must be a non-empty string, got {event!r}")
        if not callable(fn):
            raise TypeError(f"listener for {event!r} must be callable, got {fn!r}")
        if not _is_tag(tag):
            raise TypeError(f"tag must be a str or int, got {tag!r}")
        entries = self._by_event.get(event, [])
        if len(entries) >= self._max_per_event:
            raise ValueError(
                f"more than {self._max_per_event} listeners for {event!r}: "
                "this is almost certainly a listener leak"
            )
        # Copy on write: a dispatch iterating the old list is not affected.
        self._by_event[event] = [*entries, Listener(fn, once, tag, missing)]
        if once:
            self._with_once.add(event)

    def remove(self, event: str, fn_or_tag: F | Tag | None = None) -> int:
        """Remove listeners; returns how many were removed."""
        entries = self._by_event.get(event)
        if not entries:
            return 0
        if fn_or_tag is None:
            kept: list[Listener[F]] = []
        elif isinstance(fn_or_tag, str | int):
            kept = [e for e in entries if e.tag != fn_or_tag]
        else:
            kept = [e for e in entries if e.fn != fn_or_tag]
        removed = len(entries) - len(kept)
        if kept:
            self._by_event[event] = kept
        else:
            del self._by_event[event]
        if not any(e.once for e in kept):
            self._with_once.discard(event)
        return removed

    def take(self, event: str) -> list[Listener[F]] | None:
        """The listeners to call for one occurrence of ``event``; ``once`` ones are removed."""
        entries = self._by_event.get(event)
        if not entries:
            return None
        if event in self._with_once:
            self._with_once.discard(event)
            kept = [e for e in entries if not e.once]
            if kept:
                self._by_event[event] = kept
            else:
                del self._by_event[event]
        return entries

    def has(self, event: str) -> bool:
        return event in self._by_event

    def events(self) -> frozenset[str]:
        return frozenset(self._by_event)

    def count(self, event: str) -> int:
        return len(self._by_event.get(event, ()))


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_tag(value: object) -> bool:
    return value is None or isinstance(value, str | int)


def register(
    table: ListenerTable[Any],
    event: str,
    handler: Any,
    *,
    once: bool,
    tag: Tag | None,
    missing: Any = None,
) -> Any:
    """``table.add`` for APIs usable both as ``on(event, fn)`` and as ``@on(event)``."""
    if handler is None:

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            table.add(event, fn, once=once, tag=tag, missing=missing)
            return fn

        return decorator
    table.add(event, handler, once=once, tag=tag, missing=missing)
    return handler
