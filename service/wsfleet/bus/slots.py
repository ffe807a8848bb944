"""Redis Cluster hash slots: ``CRC16(key) mod 16384``, with ``{hash tags}`` (pure Python, so that
the key layout needs no client library)."""

from __future__ import annotations

from typing import Final

SLOTS: Final = 16384


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE: Final = _table()


def key_slot(key: bytes) -> int:
    """The slot of ``key``: only the part inside the first non-empty ``{…}`` counts."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    crc = 0
    for byte in key:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc % SLOTS
