"""``ListenerApi``: the ``on`` / ``once`` / ``off`` methods of the connector.

Two tables, never mixed:

- ``on(event, fn, tag=None)``: the connector's own events (``open``, ``close``, ``error``,
  ``message``, ``reconnect``, ``repeat-limit``, ``ping``, ``pong``, ``pong-timeout``). Another
  name raises ``ValueError``, which catches ``on("chat", …)`` ported from JavaScript.
- ``on_event(name, fn, tag=None)``: events pushed by the server, called as ``fn(payload)``.

Each ``on*`` / ``once*`` returns ``fn``, and without ``fn`` is a decorator::

    @connector.on_event("chat")
    async def show(payload): ...

``off*(event)`` removes every listener of the event, ``off*(event, fn)`` that function and
``off*(event, tag)`` every listener added with that tag; they return how many were removed.
Listeners may be plain or ``async`` functions (see :mod:`wsfleet.client.dispatch`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from wsfleet.client.dispatch import Dispatcher, Listener
from wsfleet.client.events import SYSTEM_EVENTS, SystemEventName
from wsfleet.listeners import Tag

__all__ = ["ListenerApi"]

L = TypeVar("L", bound=Callable[..., object])
_Add = Callable[..., None]


class ListenerApi:
    def __init__(self) -> None:
        self._dispatcher = Dispatcher()

    # ------------------------------------------------------------------ connector events

    @overload
    def on(self, event: SystemEventName, fn: L, tag: Tag | None = None) -> L: ...
    @overload
    def on(self, event: SystemEventName, *, tag: Tag | None = None) -> Callable[[L], L]: ...
    def on(self, event: SystemEventName, fn: Any = None, tag: Tag | None = None) -> Any:
        """Listen to a connector event (see the module docstring for the arguments)."""
        return _register(self._dispatcher.add_system, event, fn, tag, once=False)

    @overload
    def once(self, event: SystemEventName, fn: L, tag: Tag | None = None) -> L: ...
    @overload
    def once(self, event: SystemEventName, *, tag: Tag | None = None) -> Callable[[L], L]: ...
    def once(self, event: SystemEventName, fn: Any = None, tag: Tag | None = None) -> Any:
        """Like :meth:`on`; the listener is removed after its first call."""
        return _register(self._dispatcher.add_system, event, fn, tag, once=True)

    def off(self, event: SystemEventName, fn_or_tag: Listener | Tag | None = None) -> int:
        """Remove connector-event listeners: all, one function, or all with a tag."""
        if event not in SYSTEM_EVENTS:
            raise ValueError(f"unknown connector event {event!r} (server events: off_event)")
        return self._dispatcher.system.remove(event, fn_or_tag)

    # ------------------------------------------------------------------ server-pushed events

    @overload
    def on_event(self, event: str, fn: L, tag: Tag | None = None) -> L: ...
    @overload
    def on_event(self, event: str, *, tag: Tag | None = None) -> Callable[[L], L]: ...
    def on_event(self, event: str, fn: Any = None, tag: Tag | None = None) -> Any:
        """Listen to the server-pushed event ``event``: ``fn(payload)``. Any name is allowed."""
        return _register(self._dispatcher.add_server, event, fn, tag, once=False)

    @overload
    def once_event(self, event: str, fn: L, tag: Tag | None = None) -> L: ...
    @overload
    def once_event(self, event: str, *, tag: Tag | None = None) -> Callable[[L], L]: ...
    def once_event(self, event: str, fn: Any = None, tag: Tag | None = None) -> Any:
        """Like :meth:`on_event`; the listener is removed after its first call."""
        return _register(self._dispatcher.add_server, event, fn, tag, once=True)

    def off_event(self, event: str, fn_or_tag: Listener | Tag | None = None) -> int:
        """Remove server-event listeners: all, one function, or all with a tag."""
        return self._dispatcher.server.remove(event, fn_or_tag)


def _register(add: _Add, event: str, fn: Any, tag: Tag | None, *, once: bool) -> Any:
    if fn is None:

        def decorator(func: L) -> L:
            add(event, func, once=once, tag=tag)
            return func

        return decorator
    add(event, fn, once=once, tag=tag)
    return fn
