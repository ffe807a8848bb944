"""The bus authenticator: HMAC-SHA256 over the exact bytes of every message, with a key id.

Standard library only: the operator signs its control messages with it (like
:mod:`wsfleet.contract`, it is part of the node <-> operator contract). The node's policy around
it is :mod:`wsfleet.bus.auth`.

A signed message is the encoded map plus one last top-level field, ``wsfa``, whose value is the
text ``<key id>.<scope><ms>.<mac>``: original nodes ignore the field and decode the rest as
usual. ``mac`` is the unpadded base64url HMAC-SHA256 (43 characters) of::

    b"wsfleet-bus-1\\n" + channel + b"\\n" + every byte of the message before the mac

so it covers the map header (which counts ``wsfa``), every other field, the key id, the scope and
the time. ``scope`` is ``c`` when the channel is part of the MAC (every message whose channel the
sender knows) or ``u`` (``channel`` is empty) for the two envelopes a Redis script routes to an
inbox or the private channel (private messages, duplicate-login notices). ``ms`` is the sender's
clock in milliseconds since the epoch: receivers refuse messages older than ``max_age`` (a
replayed old message), or from further in the future than the allowed clock skew.

Keys (:class:`KeyRing`): one signing key and any number of verification keys, each with an id of
1-16 characters ``[A-Za-z0-9_-]``. They come from a file (``bus_key_file``, re-read when it
changes: rotation without restarts) or the ``WSFLEET_BUS_KEYS`` environment variable, never from
a flag or the bus. The text holds ``<key id>:<secret>`` entries, one per line (or separated by
commas); the first signs, all verify; ``#`` starts a comment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

FIELD: Final = "wsfa"
ENV_KEYS: Final = "WSFLEET_BUS_KEYS"
MIN_SECRET: Final = 16

_DOMAIN: Final = b"wsfleet-bus-1\n"
_MAC_CHARS: Final = 43
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_MSGPACK_FIELD: Final = b"\xa4wsfa\xd9"  # fixstr "wsfa", then a str8 value
_JSON_FIELD: Final = b'"wsfa":"'
_MAX_VALUE: Final = 16 + 1 + 1 + 16 + 1 + _MAC_CHARS


class BusKeyError(ValueError):
    """A bus key file or ``WSFLEET_BUS_KEYS`` value that cannot be used."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    signing_id: str
    keys: Mapping[str, bytes]

    @classmethod
    def parse(cls, text: str, source: str = "bus keys") -> KeyRing:
        entries: dict[str, bytes] = {}
        first: str | None = None
        for raw in re.split(r"[\n,]", text):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            kid, sep, secret = line.partition(":")
            kid, secret = kid.strip(), secret.strip()
            if not sep or not _KEY_ID.fullmatch(kid):
                raise BusKeyError(
                    f"{source}: each entry is '<key id>:<secret>' with a key id of 1-16 "
                    "characters A-Z a-z 0-9 _ -"
                )
            if len(secret.encode()) < MIN_SECRET:
                raise BusKeyError(f"{source}: the secret of key {kid!r} is shorter than 16 bytes")
            if kid in entries:
                raise BusKeyError(f"{source}: key id {kid!r} is listed twice")
            entries[kid] = secret.encode()
            first = first or kid
        if first is None:
            raise BusKeyError(f"{source}: no key")
        return cls(first, entries)

    @classmethod
    def load(cls, path: Path | None, environ: Mapping[str, str] | None = None) -> KeyRing | None:
        """The keys of ``path`` or, without one, of ``WSFLEET_BUS_KEYS``; None when neither."""
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise BusKeyError(
                    f"cannot read bus_key_file {str(path)!r}: {exc.strerror}"
                ) from None
            return cls.parse(text, f"bus_key_file {str(path)!r}")
        value = (os.environ if environ is None else environ).get(ENV_KEYS)
        return cls.parse(value, ENV_KEYS) if value else None


class Signer:
    """Seals outgoing messages and checks incoming ones (one HMAC each)."""

    __slots__ = ("_json", "_keys", "_now", "_sign", "max_age", "max_skew", "ring")

    def __init__(
        self,
        ring: KeyRing,
        serialization: str = "msgpack",
        *,
        max_age: float = 60.0,
        max_skew: float = 5.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        if serialization not in ("msgpack", "json"):
            raise ValueError(f"serialization must be msgpack or json, not {serialization!r}")
        self._json = serialization == "json"
        self.max_age = max_age
        self.max_skew = max_skew
        self._now = now
        self.ring = ring
        self._keys: dict[bytes, _Mac] = {}
        self._sign: tuple[bytes, _Mac] = (b"", _new_mac(b""))
        self.use(ring)

    def use(self, ring: KeyRing) -> None:
        """Switch to another key ring (a rotation step)."""
        self.ring = ring
        self._keys = {kid.encode(): _new_mac(key) for kid, key in ring.keys.items()}
        self._sign = (ring.signing_id.encode(), self._keys[ring.signing_id.encode()])

    def seal(self, data: bytes, channel: str | None) -> bytes:
        """``data`` (one encoded map) with its ``wsfa`` field; ``channel`` None for envelopes a
        Redis script routes."""
        kid, key = self._sign
        scope = b"u" if channel is None else b"c"
        ms = b"%d" % int(self._now() * 1000)
        value_head = kid + b"." + scope + ms + b"."
        if self._json:
            if data[-1:] != b"}":
                raise ValueError("a bus message must be a JSON object")
            comma = b"," if len(data) > 2 else b""
            head = b"".join((data[:-1], comma, _JSON_FIELD, value_head))
        else:
            size = _header_size(data)
            head = b"".join(
                (
                    _grown_header(data),
                    memoryview(data)[size:],
                    _MSGPACK_FIELD,
                    bytes((len(value_head) + _MAC_CHARS,)),
                    value_head,
                )
            )
        tail = _mac(key, channel.encode() if channel is not None else b"", head)
        return head + tail + b'"}' if self._json else head + tail

    def check(self, channel: bytes, data: bytes, *, fresh: bool = True) -> str | None:
        """None when ``data`` is signed by a known key for ``channel`` (or for any channel, if
        its scope says a script routed it) and, with ``fresh``, is fresh; else the reason to
        refuse it: ``unsigned``, ``malformed``, ``unknown-key``, ``bad-signature`` or
        ``stale``."""
        if self._json:
            end = len(data) - 2
            if data[end:] != b'"}':
                return "unsigned"
            start = data.rfind(_JSON_FIELD, max(0, end - _MAX_VALUE - 8), end)
            if start < 0:
                return "unsigned"
            value_start = start + len(_JSON_FIELD)
        else:
            end = len(data)
            start = data.rfind(_MSGPACK_FIELD, max(0, end - _MAX_VALUE - 7), end)
            if start < 0:
                return "unsigned"
            value_start = start + len(_MSGPACK_FIELD) + 1
            if data[value_start - 1] != end - value_start:
                return "malformed"
        mac_start = end - _MAC_CHARS
        if mac_start - 1 <= value_start or data[mac_start - 1] != 0x2E:  # "."
            return "malformed"
        kid, _, stamp = data[value_start : mac_start - 1].partition(b".")
        key = self._keys.get(kid)
        if key is None:
            return "unknown-key"
        scope = stamp[:1]
        if scope == b"c":
            bound = channel
        elif scope == b"u":
            bound = b""
        else:
            return "malformed"
        digits = stamp[1:]
        if not digits.isdigit() or len(digits) > 15:
            return "malformed"
        if not hmac.compare_digest(_mac(key, bound, data[:mac_start]), data[mac_start:end]):
            return "bad-signature"
        age = self._now() - int(digits) / 1000
        if fresh and (age > self.max_age or age < -self.max_skew):
            return "stale"
        return None


_Mac = Any  # hmac.HMAC, with the key and the domain already absorbed


def _new_mac(key: bytes) -> _Mac:
    return hmac.new(key, _DOMAIN, hashlib.sha256)


def _mac(base: _Mac, bound: bytes, head: bytes) -> bytes:
    mac = base.copy()
    mac.update(bound + b"\n")
    mac.update(head)
    return base64.urlsafe_b64encode(mac.digest())[:_MAC_CHARS]


def _header_size(data: bytes) -> int:
    first = data[0] if data else 0
    if 0x80 <= first <= 0x8F:
        return 1
    if first == 0xDE:
        return 3
    if first == 0xDF:
        return 5
    raise ValueError("a bus message must be a MessagePack map")


def _grown_header(data: bytes) -> bytes:
    """The map header of ``data`` counting one more field."""
    first = data[0]
    if first < 0x8F:
        return bytes((first + 1,))
    if first == 0x8F:
        return b"\xde\x00\x10"
    if first == 0xDE:
        count = struct.unpack_from(">H", data, 1)[0] + 1
        return (
            struct.pack(">BH", 0xDE, count) if count <= 0xFFFF else struct.pack(">BI", 0xDF, count)
        )
    return struct.pack(">BI", 0xDF, struct.unpack_from(">I", data, 1)[0] + 1)
