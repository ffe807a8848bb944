"""The result shapes of ``emit`` callbacks and ``emit_with_promise`` (the original's dicts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Required, TypedDict

from wsfleet.client.errors import EmitError

__all__ = ["EmitCallback", "EmitError", "EmitResult"]


class EmitResult(TypedDict, total=False):
    """What ``emit_with_promise`` returns, as the original's promise resolved:
    ``{"success": True, "data": …}`` or ``{"success": False, "error": …, "errorCode"?: …}``."""

    success: Required[bool]
    data: Any
    error: str
    errorCode: str


#: ``callback(None, data)`` on ack, ``callback({"error", "errorCode"}, None)`` on failure.
#: May be a plain or an ``async`` function.
EmitCallback = Callable[[EmitError | None, Any], object]
