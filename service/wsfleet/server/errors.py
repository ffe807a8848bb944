"""Errors raised by the node's public API and its ``authenticate`` hook."""

from __future__ import annotations

from wsfleet.protocol.errors import WsfleetError


class Refuse(WsfleetError):
    """Raise from an ``authenticate`` hook to refuse the upgrade with an HTTP status."""

    def __init__(self, status: int = 401, reason: str = "Unauthorized") -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"Refuse needs an HTTP error status (400-599), got {status}")
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class DuplicateSocketError(WsfleetError):
    """``set_user_socket`` was refused because the id is live (``DuplicatePolicy.REJECT_NEW``)."""


class UnknownSocketError(WsfleetError, KeyError):
    """A room operation named a socket id that is not registered on this node."""


def check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{kind} must be a non-empty string, got {value!r}")
    return value
