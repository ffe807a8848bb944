"""permessage-deflate (RFC 7692) for server frames, without context takeover.

Each message is compressed on its own (a fresh compressor, flushed with ``Z_SYNC_FLUSH``, the
``00 00 ff ff`` tail removed), so the compressed frame does not depend on what was sent before on
the connection: it is valid on every connection that negotiated the same window size. A
broadcast's frame is therefore compressed once and the result written to every socket, like the
uncompressed frame is. The receiver keeps its window as usual; not referring to it is allowed
without announcing ``server_no_context_takeover``.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

_RSV1: Final = 0x40
_DATA_FINAL: Final = (0x81, 0x82)  # FIN + text, FIN + binary, not compressed yet
_TAIL: Final = b"\x00\x00\xff\xff"


def _header(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def _payload_offset(frame: bytes) -> int:
    length = frame[1] & 0x7F
    return 2 if length < 126 else (4 if length == 126 else 10)


class Deflater:
    """Compresses the data frames of at least ``threshold`` payload bytes; other frames (short
    ones, control frames) pass unchanged. Remembers the last frame it compressed, so the same
    frame sent to many sockets costs one compression."""

    __slots__ = ("_last_in", "_last_out", "level", "threshold", "wbits")

    def __init__(self, threshold: int, wbits: int = 15, level: int = 6) -> None:
        if not 9 <= wbits <= 15:
            raise ValueError(f"window bits must be 9-15, got {wbits}")
        self.threshold = threshold
        # zlib cannot make raw deflate streams with a 2**8 window; 9 is the smallest it uses
        self.wbits = wbits
        self.level = level
        self._last_in: bytes | None = None
        self._last_out = b""

    def __call__(self, frame: bytes) -> bytes:
        if len(frame) < self.threshold or frame[0] not in _DATA_FINAL:
            return frame
        if frame is self._last_in:
            return self._last_out
        offset = _payload_offset(frame)
        if len(frame) - offset < self.threshold:
            return frame
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -self.wbits)
        body = compressor.compress(frame[offset:]) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if body.endswith(_TAIL):
            body = body[:-4]
        out = _header(frame[0] | _RSV1, len(body)) + body
        self._last_in, self._last_out = frame, out
        return out


_shared: dict[tuple[int, int], Deflater] = {}


def shared_deflater(threshold: int, wbits: int) -> Deflater:
    """One :class:`Deflater` per (threshold, window), shared by the sockets that use it."""
    key = (threshold, wbits)
    deflater = _shared.get(key)
    if deflater is None:
        deflater = _shared[key] = Deflater(threshold, wbits)
    return deflater
