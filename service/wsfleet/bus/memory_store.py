"""The data side of the in-memory broker: a keyspace with Redis semantics and its commands.

:class:`MemoryKeyspace` keeps strings (with millisecond expiry on the broker's clock), sorted
sets and hashes, as bytes. :func:`run_command` answers the subset of Redis commands the bus sends
(``PING``, ``PUBLISH``, ``PUBSUB NUMSUB``, ``GET``/``SET``/``DEL``/``INCR`` and ``EVAL`` of the
scripts declared in :mod:`wsfleet.bus.scripts`); anything else is an error reply.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from wsfleet.bus.broker import LinkError
from wsfleet.bus.scripts import twin_of

Publish = Callable[[bytes, bytes], int]


def as_bytes(value: Any) -> bytes:
    """An argument as RESP would send it; raises ``TypeError`` like the Redis link."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


class MemoryKeyspace:
    """Strings with expiry, sorted sets and hashes (see :class:`wsfleet.bus.scripts.Keyspace`)."""

    def __init__(self, now_ms: Callable[[], float], publish: Publish) -> None:
        self._now_ms = now_ms
        self._publish = publish
        self.strings: dict[bytes, bytes] = {}
        self.expiry: dict[bytes, float] = {}
        self.zsets: dict[bytes, dict[bytes, float]] = {}
        self.hashes: dict[bytes, dict[bytes, bytes]] = {}

    def clear(self) -> None:
        self.strings.clear()
        self.expiry.clear()
        self.zsets.clear()
        self.hashes.clear()

    def _alive(self, key: bytes) -> bool:
        deadline = self.expiry.get(key)
        if deadline is not None and deadline <= self._now_ms():
            self.strings.pop(key, None)
            del self.expiry[key]
        return key in self.strings

    def get(self, key: bytes) -> bytes | None:
        return self.strings[key] if self._alive(key) else None

    def set(self, key: bytes, value: bytes, px: int | None = None) -> None:
        self.strings[key] = value
        if px is None:
            self.expiry.pop(key, None)
        else:
            self.expiry[key] = self._now_ms() + px

    def pexpire(self, key: bytes, ms: int) -> None:
        if self._alive(key):
            self.expiry[key] = self._now_ms() + ms

    def delete(self, key: bytes) -> int:
        found = self._alive(key) or key in self.zsets or key in self.hashes
        self.strings.pop(key, None)
        self.expiry.pop(key, None)
        self.zsets.pop(key, None)
        self.hashes.pop(key, None)
        return int(found)

    def zadd(self, key: bytes, score: float, member: bytes) -> None:
        self.zsets.setdefault(key, {})[member] = score

    def zrem(self, key: bytes, member: bytes) -> None:
        self.zsets.get(key, {}).pop(member, None)

    def zrangebyscore(self, key: bytes, low: float, high: float) -> list[bytes]:
        pairs = sorted((score, member) for member, score in self.zsets.get(key, {}).items())
        start = bisect.bisect_left(pairs, (low, b""))
        return [member for score, member in pairs[start:] if score <= high]

    def zremrangebyscore(self, key: bytes, low: float, high: float) -> None:
        zset = self.zsets.get(key, {})
        for member in [m for m, score in zset.items() if low <= score <= high]:
            del zset[member]

    def hset(self, key: bytes, field: bytes, value: bytes) -> None:
        self.hashes.setdefault(key, {})[field] = value

    def hget(self, key: bytes, field: bytes) -> bytes | None:
        return self.hashes.get(key, {}).get(field)

    def hdel(self, key: bytes, field: bytes) -> None:
        self.hashes.get(key, {}).pop(field, None)

    def publish(self, channel: bytes, data: bytes) -> int:
        return self._publish(channel, data)


def run_command(ks: MemoryKeyspace, args: Sequence[bytes], numsub: Callable[[bytes], int]) -> Any:
    """The reply to one command, or a :class:`LinkError` instance for an error reply."""
    if not args:
        return LinkError("ERR empty command")
    name = args[0].upper()
    rest = args[1:]
    try:
        if name == b"PUBLISH" and len(rest) == 2:
            return ks.publish(rest[0], rest[1])
        if name == b"PING":
            return b"PONG"
        if name == b"PUBSUB" and rest and rest[0].upper() == b"NUMSUB":
            out: list[Any] = []
            for channel in rest[1:]:
                out += [channel, numsub(channel)]
            return out
        if name == b"GET" and len(rest) == 1:
            return ks.get(rest[0])
        if name == b"SET" and len(rest) == 2:
            ks.set(rest[0], rest[1])
            return b"OK"
        if name == b"DEL":
            return sum(ks.delete(key) for key in rest)
        if name == b"INCR" and len(rest) == 1:
            value = int(ks.get(rest[0]) or b"0") + 1
            ks.set(rest[0], b"%d" % value)
            return value
        if name == b"EVAL" and len(rest) >= 2:
            declared = twin_of(rest[0])
            if declared is None:
                return LinkError("NOSCRIPT the memory broker has no twin of this script")
            count = int(rest[1])
            return declared.twin(ks, rest[2 : 2 + count], rest[2 + count :])
    except ValueError:
        return LinkError("ERR value is not an integer or out of range")
    return LinkError(f"ERR unknown command {name.decode(errors='replace')!r} for the memory broker")
