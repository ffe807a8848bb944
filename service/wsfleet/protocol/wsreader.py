"""RFC 6455 client frames, parsed without I/O: bytes in, whole messages out.

:class:`FrameReader` is fed what the socket read and hands back one message at a time
(``next_message``): text (a ``str``), binary (``bytes``), ping, pong and close. Every rule a server
must enforce is checked here and breaks the connection with :class:`ProtocolError`, which carries
the close code to send:

- 1002: an unmasked client frame (RFC 6455 §5.1), reserved bits (RSV1 only for a compressed
  message on a connection that negotiated permessage-deflate), an unknown opcode, a fragmented or
  over-long control frame, a continuation without a message, a new message inside a fragmented
  one, a malformed close frame or a close code that may not be sent;
- 1007: a text message or close reason that is not UTF-8;
- 1009: a message (or its compressed form) larger than ``max_size``, decided from the frame header
  before its payload is read, and, for compressed messages, while inflating.

Buffering is bounded: the reader keeps the bytes of at most one incomplete frame (≤ ``max_size`` +
14 header bytes, beyond which the header already failed it) plus the parts of one fragmented
message (≤ ``max_size``), and what was read but not parsed yet; the caller stops reading while it
does not take messages.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Final

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

_DEFLATE_TAIL: Final = b"\x00\x00\xff\xff"
#: Close codes a peer may send (RFC 6455 §7.4.1 and the IANA registry); 3000-4999 are free.
_SENDABLE_CLOSE_CODES: Final = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_REGISTERED_CLOSE_CODES: Final = frozenset({1012, 1013, 1014})
#: "No status code was present" (never sent on the wire, reported for an empty close frame).
NO_STATUS: Final = 1005


class ProtocolError(Exception):
    """The peer broke RFC 6455: close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def valid_close_code(code: int) -> bool:
    return code in _SENDABLE_CLOSE_CODES or code in _REGISTERED_CLOSE_CODES or 3000 <= code <= 4999


#: A C function that XORs a ``bytearray`` in place with a 4-byte key repeated (the signature of
#: aiohttp's compiled masker): ``mask_into(key, data)``.
MaskInto = Callable[[bytes, bytearray], None]

_SHORT: Final = 126
#: ``key * _REPEAT[n] & _LOW[n]``: a 4-byte key (as a little-endian int) repeated over n bytes,
#: by one multiplication (each 32-bit word of ``_REPEAT[n]`` is 1, so no copy carries into the
#: next) instead of repeating, slicing and converting the key's bytes for every frame.
_REPEAT: Final = tuple(sum(1 << (32 * i) for i in range((n + 3) // 4)) for n in range(_SHORT))
_LOW: Final = tuple((1 << (8 * n)) - 1 for n in range(_SHORT))


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (one big-integer XOR, no Python loop)."""
    n = len(payload)
    if not n:
        return b""
    if n < _SHORT:
        key = int.from_bytes(mask, "little") * _REPEAT[n] & _LOW[n]
        return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")
    repeated = mask * ((n >> 2) + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated[:n], "little")).to_bytes(
        n, "little"
    )


class FrameReader:
    """The read side of one server connection. ``deflate`` says permessage-deflate was
    negotiated (the client keeps its compression context across messages unless it announced
    ``client_no_context_takeover``). ``mask_into``, when given, unmasks short text frames (the
    usual message) in C; every other frame, and every frame without it, goes through
    :func:`unmask`."""

    __slots__ = (
        "_buf",
        "_compressed",
        "_inflater",
        "_no_takeover",
        "_parts",
        "_parts_opcode",
        "_parts_size",
        "_pos",
        "deflate",
        "mask_into",
        "max_size",
    )

    def __init__(
        self,
        max_size: int,
        *,
        deflate: bool = False,
        no_takeover: bool = False,
        mask_into: MaskInto | None = None,
    ) -> None:
        self.max_size = max_size
        self.deflate = deflate
        self.mask_into = mask_into
        self._no_takeover = no_takeover
        self._buf = b""
        self._pos = 0
        self._parts: list[bytes] | None = None  # the fragments of the current message
        self._parts_opcode = 0
        self._parts_size = 0
        self._compressed = False
        self._inflater: Any = None  # a zlib decompressor, made for the first compressed message

    def feed(self, data: bytes) -> None:
        if self._pos >= len(self._buf):
            self._buf, self._pos = data, 0
        else:
            self._buf, self._pos = self._buf[self._pos :] + data, 0

    def buffered(self) -> int:
        """Bytes read and not parsed into a message yet (an incomplete frame, frames waiting)."""
        return len(self._buf) - self._pos + self._parts_size

    def next_message(self) -> tuple[int, str | bytes] | None:
        """The next whole message as ``(opcode, payload)``, or None until more bytes come.
        Text payloads are ``str``; close payloads stay ``bytes`` (see :func:`parse_close`)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:  # nothing (left) to parse: the usual answer after a message
            return None
        # The usual frame first: a whole, masked, uncompressed text frame under 126 bytes.
        if len(buf) - pos >= 6 and buf[pos] == 0x81 and self._parts is None:
            second = buf[pos + 1]
            length = second & 0x7F
            stop = pos + 6 + length
            if 0x80 <= second < 0xFE and stop <= len(buf):
                self._pos = stop
                if length > self.max_size:
                    raise ProtocolError(1009, f"frame of {length} bytes exceeds {self.max_size}")
                payload: bytes | bytearray
                mask_into = self.mask_into
                if not length:
                    payload = b""
                elif mask_into is not None:
                    payload = bytearray(buf[pos + 6 : stop])
                    mask_into(buf[pos + 2 : pos + 6], payload)
                else:
                    key = int.from_bytes(buf[pos + 2 : pos + 6], "little")
                    payload = (
                        int.from_bytes(buf[pos + 6 : stop], "little")
                        ^ (key * _REPEAT[length] & _LOW[length])
                    ).to_bytes(length, "little")
                try:
                    return OP_TEXT, payload.decode()
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "text message is not UTF-8") from None
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            opcode, fin, rsv1, payload = frame
            if opcode >= OP_CLOSE:
                return opcode, payload
            message = self._assemble(opcode, fin, rsv1, payload)
            if message is not None:
                return message

    def _next_frame(self) -> tuple[int, bool, bool, bytes] | None:
        buf, pos = self._buf, self._pos
        end = len(buf)
        if end - pos < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        opcode = first & 0x0F
        if not second & 0x80:
            raise ProtocolError(1002, "client frames must be masked (RFC 6455 5.1)")
        rsv1 = bool(first & 0x40)
        if first & 0x30 or (rsv1 and not self.deflate):
            raise ProtocolError(1002, "reserved bits set")
        length = second & 0x7F
        head = pos + 2
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise ProtocolError(1002, f"unknown opcode {opcode}")
            if not first & 0x80 or length > 125:
                raise ProtocolError(1002, "control frames must be whole and at most 125 bytes")
            if rsv1:
                raise ProtocolError(1002, "reserved bits set on a control frame")
        elif opcode > OP_BINARY:
            raise ProtocolError(1002, f"unknown opcode {opcode}")
        if length == 126:
            if end - head < 2:
                return None
            length = int.from_bytes(buf[head : head + 2], "big")
            head += 2
        elif length == 127:
            if end - head < 8:
                return None
            length = int.from_bytes(buf[head : head + 8], "big")
            head += 8
        if length > self.max_size:
            raise ProtocolError(1009, f"frame of {length} bytes exceeds {self.max_size}")
        stop = head + 4 + length
        if stop > end:
            return None
        payload = unmask(buf[head + 4 : stop], buf[head : head + 4])
        self._pos = stop
        return opcode, bool(first & 0x80), rsv1, payload

    def _assemble(
        self, opcode: int, fin: bool, rsv1: bool, payload: bytes
    ) -> tuple[int, str | bytes] | None:
        parts = self._parts
        if opcode == OP_CONTINUATION:
            if parts is None:
                raise ProtocolError(1002, "continuation frame without a message")
            if rsv1:
                raise ProtocolError(1002, "RSV1 set on a continuation frame")
            self._parts_size += len(payload)
            if self._parts_size > self.max_size:
                raise ProtocolError(1009, f"message exceeds {self.max_size} bytes")
            parts.append(payload)
            if not fin:
                return None
            opcode, compressed = self._parts_opcode, self._compressed
            payload = b"".join(parts)
            self._parts, self._parts_size = None, 0
        else:
            if parts is not None:
                raise ProtocolError(1002, "a new message inside a fragmented one")
            compressed = rsv1
            if not fin:
                self._parts, self._parts_opcode = [payload], opcode
                self._parts_size, self._compressed = len(payload), rsv1
                return None
        if compressed:
            payload = self._inflate(payload)
        if opcode == OP_TEXT:
            try:
                return OP_TEXT, payload.decode()
            except UnicodeDecodeError:
                raise ProtocolError(1007, "text message is not UTF-8") from None
        return OP_BINARY, payload

    def _inflate(self, payload: bytes) -> bytes:
        inflater = self._inflater
        if inflater is None or self._no_takeover:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            if not self._no_takeover:
                self._inflater = inflater
        try:
            out: bytes = inflater.decompress(payload + _DEFLATE_TAIL, self.max_size + 1)
        except zlib.error as exc:
            raise ProtocolError(1007, f"compressed message cannot be inflated: {exc}") from None
        if len(out) > self.max_size or inflater.unconsumed_tail:
            raise ProtocolError(1009, f"inflated message exceeds {self.max_size} bytes")
        return out


def parse_close(payload: bytes) -> tuple[int, str]:
    """``(code, reason)`` of a client's close frame; ``NO_STATUS`` for an empty one."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) < 2:
        raise ProtocolError(1002, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not valid_close_code(code):
        raise ProtocolError(1002, f"close code {code} may not be sent")
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(1007, "close reason is not UTF-8") from None
