"""The error hierarchy shared by every part of wsfleet.

``WsfleetError`` is the root. The codec raises only :class:`FrameError` (input) and
:class:`EncodeError` (output), whatever the bytes it is fed.
"""

from __future__ import annotations


class WsfleetError(Exception):
    """Root of every error raised by wsfleet itself."""


class FrameError(WsfleetError, ValueError):
    """A frame received from the peer is not a valid wsfleet frame.

    ``reason`` is a short machine-readable tag (``"json"``, ``"shape"``, ``"event"``,
    ``"utf8"``) used as a bounded metric label.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"invalid frame ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(WsfleetError, TypeError):
    """A payload cannot be represented as JSON (unsupported type, integer too large, ...)."""
