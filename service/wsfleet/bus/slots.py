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


_tags: dict[int, str] = {}


def slot_tag(name: str) -> str:
    """A hash tag (``{…}``) that puts a key in the same slot as ``name`` (a channel, say): the
    part of ``name`` Redis hashes when it has no ``}`` (nearly always), else the first of
    ``s0``, ``s1``, … that lands in that slot (found once per slot)."""
    raw = name.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            return "{" + raw[start + 1 : end].decode() + "}"
    if "}" not in name and name:
        return "{" + name + "}"
    slot = key_slot(raw)
    tag = _tags.get(slot)
    if tag is None:
        n = 0
        while crc_hqx(b"s%d" % n, 0) % SLOTS != slot:
            n += 1
        tag = _tags[slot] = f"s{n}"
    return "{" + tag + "}"
