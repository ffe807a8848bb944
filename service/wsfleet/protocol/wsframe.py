"""RFC 6455 server frames built once, as bytes, so one broadcast is one buffer for every socket.

Server-to-client frames are never masked, so the same bytes are valid on every connection; on a
connection that negotiated permessage-deflate, ``wsfleet.protocol.deflate`` compresses large ones
(once per frame, for every socket).
"""

from __future__ import annotations

import struct
from typing import Final

_FIN_TEXT: Final = 0x81
_FIN_CLOSE: Final = 0x88
_FIN_PING: Final = 0x89
_FIN_PONG: Final = 0x8A
_MAX_CONTROL_PAYLOAD: Final = 125


def _header(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


#: The 2-byte headers of text frames shorter than 126 bytes, built once: most frames (every ack,
#: most events) are that short, and this skips a call and a ``bytes`` per frame.
_SHORT_TEXT_HEADERS: Final = tuple(bytes((_FIN_TEXT, length)) for length in range(126))


def build_text_frame(payload: bytes) -> bytes:
    """A complete unmasked text frame holding ``payload`` (which must be UTF-8)."""
    length = len(payload)
    if length < 126:
        return _SHORT_TEXT_HEADERS[length] + payload
    return _header(_FIN_TEXT, length) + payload


def build_close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control-frame limit."""
    body = struct.pack("!H", code) + reason.encode()[: _MAX_CONTROL_PAYLOAD - 2]
    return _header(_FIN_CLOSE, len(body)) + body


def build_pong_frame(payload: bytes = b"") -> bytes:
    return _header(_FIN_PONG, len(payload[:_MAX_CONTROL_PAYLOAD])) + payload[:_MAX_CONTROL_PAYLOAD]


PING_FRAME: Final = bytes((_FIN_PING, 0))
