"""How the bus calls its consumer (the fleet): one narrow, declared interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeGuard, cast

__all__ = ["BusEventHandler", "HealthListener", "MessageHandler", "as_handler"]

MessageHandler = Callable[[str, dict[str, Any]], None]
HealthListener = Callable[[bool, dict[str, Any]], None]


class BusEventHandler(Protocol):
    """The bus's consumer (the fleet): the only way the bus calls out."""

    def on_bus_message(self, channel: str, message: dict[str, Any]) -> None:
        """A decoded message from another node (echoes, duplicates and probes removed)."""

    def on_bus_health(self, healthy: bool, info: dict[str, Any]) -> None:
        """A broker connection became healthy or not (the original's ``onRedisHealthChange``)."""


class _MessageOnly:
    __slots__ = ("on_bus_message",)

    def __init__(self, on_message: MessageHandler) -> None:
        self.on_bus_message = on_message

    def on_bus_health(self, healthy: bool, info: dict[str, Any]) -> None:
        pass


def _is_handler(handler: BusEventHandler | MessageHandler) -> TypeGuard[BusEventHandler]:
    return hasattr(handler, "on_bus_message")


def as_handler(handler: BusEventHandler | MessageHandler) -> BusEventHandler:
    """``handler`` itself, or a plain message callback wrapped as a handler."""
    if _is_handler(handler):
        return handler
    return _MessageOnly(cast(MessageHandler, handler))
