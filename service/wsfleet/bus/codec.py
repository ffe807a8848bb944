"""Serialization of bus messages: MessagePack (as notepack.io 3 writes it) or JSON.

Both modes must match on every node of a fleet, as with the original. Decoding raises only
:class:`BusDecodeError`, whatever the bytes: anyone who can publish on Redis can send garbage.

Strings with lone UTF-16 surrogates (from JavaScript clients) take a slower path only when the
fast encoder or decoder refused them: JSON writes and reads them as ``\\udXXX`` escapes, as
``JSON.stringify``/``JSON.parse`` do; MessagePack writes the bytes notepack.io writes for them
(:func:`~wsfleet.protocol.json_compat.notepack_text`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgpack
import orjson

from wsfleet.protocol.errors import WsfleetError
from wsfleet.protocol.json_compat import (
    LenientJSONError,
    dumps_lenient,
    has_surrogate_escape,
    loads_lenient,
    notepack_strings,
)


class BusDecodeError(WsfleetError, ValueError):
    """A message on a bus channel is not a valid envelope."""


class Serialization(StrEnum):
    MSGPACK = "msgpack"
    JSON = "json"


class BusCodec:
    __slots__ = ("_packer", "mode")

    def __init__(self, mode: Serialization = Serialization.MSGPACK) -> None:
        self.mode = Serialization(mode)
        self._packer = msgpack.Packer(use_bin_type=True, datetime=False)

    def dumps(self, message: dict[str, Any]) -> bytes:
        if self.mode is Serialization.MSGPACK:
            try:
                return self._packer.pack(message)  # type: ignore[no-any-return]
            except UnicodeEncodeError:  # a lone surrogate: written as notepack.io writes it
                return self._pack_notepack_strings(message)
            except (TypeError, ValueError, OverflowError) as exc:
                raise BusDecodeError(f"cannot encode bus message: {exc}") from exc
        try:
            return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            try:
                return dumps_lenient(message)
            except LenientJSONError:
                raise BusDecodeError(f"cannot encode bus message: {exc}") from exc

    def _pack_notepack_strings(self, message: dict[str, Any]) -> bytes:
        try:
            return self._packer.pack(notepack_strings(message))  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError, LenientJSONError) as exc:
            raise BusDecodeError(f"cannot encode bus message: {exc}") from exc

    def key_marker(self, key: str, value: str) -> bytes:
        """The bytes ``key: value`` takes inside an encoded map (to find a field without
        decoding the message)."""
        encoded = self.dumps({key: value})
        return encoded[1:] if self.mode is Serialization.MSGPACK else encoded[1:-1]

    @staticmethod
    def _loads_lenient(raw: bytes) -> Any:
        try:
            return loads_lenient(raw)
        except LenientJSONError as exc:
            raise BusDecodeError(f"undecodable json message: {exc}") from None

    def loads(self, raw: bytes) -> dict[str, Any]:
        try:
            if self.mode is Serialization.MSGPACK:
                value = msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=3)
            else:
                value = orjson.loads(raw)
        except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, ...)
            if self.mode is Serialization.JSON and has_surrogate_escape(raw):
                value = self._loads_lenient(raw)
            else:
                raise BusDecodeError(f"undecodable {self.mode.value} message: {exc}") from None
        if not isinstance(value, dict):
            raise BusDecodeError(f"bus message must be a map, got {type(value).__name__}")
        return value
