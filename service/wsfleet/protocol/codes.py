"""WebSocket close codes used by wsfleet, with the ranges that decide whether a client reconnects.

- 1000-2999: RFC 6455. wsfleet sends 1001 on shutdown, 1009 for an oversized frame and 1012
  ("service restart") while a node drains: clients reconnect, to another node.
- 4001-4002: reserved for the client SDK (the original ``WebSocketConnector``).
- 4003-4009: reserved for wsfleet's server-side limits.
- 4010-4999: applications. 4010 forced logout, 4011 authentication failed and 4012 replaced by a
  newer login are the original framework's conventions; clients do not reconnect on them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    ABNORMAL = 1006
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012
    CLIENT_MANUAL_CLOSE = 4001
    PONG_TIMEOUT = 4002
    SLOW_CONSUMER = 4003
    RATE_LIMITED = 4004
    AUTH_TIMEOUT = 4005
    FORCED_LOGOUT = 4010
    AUTH_FAILED = 4011
    DUPLICATE_LOGIN = 4012


RESERVED_FOR_CLIENT: Final = frozenset({CloseCode.CLIENT_MANUAL_CLOSE, CloseCode.PONG_TIMEOUT})

#: Close codes after which a client must not reconnect on its own.
TERMINAL_CLOSE_CODES: Final = frozenset(
    {
        CloseCode.CLIENT_MANUAL_CLOSE,
        CloseCode.FORCED_LOGOUT,
        CloseCode.AUTH_FAILED,
        CloseCode.DUPLICATE_LOGIN,
    }
)


def is_terminal_close(code: int | None) -> bool:
    """True when a close with ``code`` means "do not reconnect"."""
    return code in TERMINAL_CLOSE_CODES
