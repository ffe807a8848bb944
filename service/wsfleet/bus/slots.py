"""Redis Cluster hash slots: ``CRC16(key) mod 16384``, with ``{hash tags}``. Redis' CRC16 is
CRC-CCITT (XModem), which the standard library computes in C (``binascii.crc_hqx``): the key
layout needs no client library, and a slot costs well under a microsecond on the publish path."""

from __future__ import annotations

from binascii import crc_hqx
from typing import Final

SLOTS: Final = 16384


def key_slot(key: bytes) -> int:
    """The slot of ``key``: only the part inside the first non-empty ``{…}`` counts."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS
