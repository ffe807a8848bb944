"""Serialization of bus messages: MessagePack (as notepack.io 3 writes it) or JSON.

Both modes must match on every node of a fleet, as with the original. Decoding raises only
:class:`BusDecodeError`, whatever the bytes: anyone who can publish on Redis can send garbage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgpack
import orjson

from wsfleet.protocol.errors import WsfleetError


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
            except (TypeError, ValueError, OverflowError) as exc:
                raise BusDecodeError(f"cannot encode bus message: {exc}") from exc
        try:
            return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise BusDecodeError(f"cannot encode bus message: {exc}") from exc

    def key_marker(self, key: str, value: str) -> bytes:
        """The bytes ``key: value`` takes inside an encoded map (to find a field without
        decoding the message)."""
        encoded = self.dumps({key: value})
        return encoded[1:] if self.mode is Serialization.MSGPACK else encoded[1:-1]

    def loads(self, raw: bytes) -> dict[str, Any]:
        try:
            if self.mode is Serialization.MSGPACK:
                value = msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=3)
            else:
                value = orjson.loads(raw)
        except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, ...)
            raise BusDecodeError(f"undecodable {self.mode.value} message: {exc}") from None
        if not isinstance(value, dict):
            raise BusDecodeError(f"bus message must be a map, got {type(value).__name__}")
        return value
