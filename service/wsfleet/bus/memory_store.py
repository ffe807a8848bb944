"""The data side of the in-memory broker: a keyspace with Redis semantics and its commands.

:class:`MemoryKeyspace` keeps strings, sorted sets, hashes and streams, as bytes, each with a
millisecond expiry on the broker's clock. :func:`run_command` answers the subset of Redis
commands the bus sends (``PING``, ``PUBLISH``, ``PUBSUB NUMSUB``, ``GET``/``SET``/``DEL``/
``INCR``, the hash commands of recovery sessions, ``PEXPIRE``, and ``EVAL``/``EVALSHA`` of the
scripts declared in :mod:`wsfleet.bus.scripts`); anything else is an error reply.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from wsfleet.bus.broker import LinkError
from wsfleet.bus.resp import KNOWN_SCRIPTS
from wsfleet.bus.scripts import StreamEntry, twin_of

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


class MemoryStream:
    """One stream: its entries (id, fields) oldest first, and how many were ever added."""

    __slots__ = ("added", "entries", "last")

    def __init__(self) -> None:
        self.entries: list[StreamEntry] = []
        self.added = 0
        self.last = (0, 0)


class MemoryKeyspace:
    """Strings, sorted sets, hashes and streams, each key with an optional expiry (see
    :class:`wsfleet.bus.scripts.Keyspace`)."""

    def __init__(self, now_ms: Callable[[], float], publish: Publish) -> None:
        self._now_ms = now_ms
        self._publish = publish
        self.strings: dict[bytes, bytes] = {}
        self.expiry: dict[bytes, float] = {}
        self.zsets: dict[bytes, dict[bytes, float]] = {}
        self.hashes: dict[bytes, dict[bytes, bytes]] = {}
        self.streams: dict[bytes, MemoryStream] = {}

    def clear(self) -> None:
        self.strings.clear()
        self.expiry.clear()
        self.zsets.clear()
        self.hashes.clear()
        self.streams.clear()

    def _drop(self, key: bytes) -> None:
        self.strings.pop(key, None)
        self.zsets.pop(key, None)
        self.hashes.pop(key, None)
        self.streams.pop(key, None)
        self.expiry.pop(key, None)

    def _expire(self, key: bytes) -> None:
        deadline = self.expiry.get(key)
        if deadline is not None and deadline <= self._now_ms():
            self._drop(key)

    def _alive(self, key: bytes) -> bool:
        self._expire(key)
        return key in self.strings

    def exists(self, key: bytes) -> bool:
        self._expire(key)
        return key in self.strings or key in self.zsets or key in self.hashes or key in self.streams

    def get(self, key: bytes) -> bytes | None:
        return self.strings[key] if self._alive(key) else None

    def set(self, key: bytes, value: bytes, px: int | None = None) -> None:
        self.strings[key] = value
        if px is None:
            self.expiry.pop(key, None)
        else:
            self.expiry[key] = self._now_ms() + px

    def pexpire(self, key: bytes, ms: int) -> int:
        if not self.exists(key):
            return 0
        self.expiry[key] = self._now_ms() + ms
        return 1

    def delete(self, key: bytes) -> int:
        found = self.exists(key)
        self._drop(key)
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

    def hset(self, key: bytes, field: bytes, value: bytes) -> int:
        self._expire(key)
        fields = self.hashes.setdefault(key, {})
        new = field not in fields
        fields[field] = value
        return int(new)

    def hget(self, key: bytes, field: bytes) -> bytes | None:
        self._expire(key)
        return self.hashes.get(key, {}).get(field)

    def hgetall(self, key: bytes) -> list[bytes]:
        self._expire(key)
        return [part for pair in self.hashes.get(key, {}).items() for part in pair]

    def hdel(self, key: bytes, field: bytes) -> int:
        self._expire(key)
        fields = self.hashes.get(key)
        if fields is None or field not in fields:
            return 0
        del fields[field]
        if not fields:
            self._drop(key)
        return 1

    def xadd(self, key: bytes, fields: Sequence[bytes], maxlen: int) -> bytes:
        """Append with an id of the clock's milliseconds and a sequence, as ``XADD key * ...``;
        keeps at most ``maxlen`` entries (an exact ``MAXLEN ~``: Redis may keep a few more)."""
        self._expire(key)
        stream = self.streams.setdefault(key, MemoryStream())
        ms, seq = int(self._now_ms()), 0
        if ms <= stream.last[0]:
            ms, seq = stream.last[0], stream.last[1] + 1
        stream.last = (ms, seq)
        entry_id = b"%d-%d" % (ms, seq)
        stream.entries.append((entry_id, list(fields)))
        stream.added += 1
        if len(stream.entries) > maxlen:
            del stream.entries[: len(stream.entries) - maxlen]
        return entry_id

    def xrange(self, key: bytes, count: int) -> list[StreamEntry]:
        """The ``count`` oldest entries (``XRANGE key - + COUNT count``)."""
        self._expire(key)
        stream = self.streams.get(key)
        return [] if stream is None else stream.entries[:count]

    def entries_added(self, key: bytes) -> int:
        self._expire(key)
        stream = self.streams.get(key)
        return 0 if stream is None else stream.added

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
        if name == b"PEXPIRE" and len(rest) == 2:
            return ks.pexpire(rest[0], int(rest[1]))
        if name == b"HSET" and len(rest) >= 3 and len(rest) % 2 == 1:
            return sum(ks.hset(rest[0], rest[i], rest[i + 1]) for i in range(1, len(rest), 2))
        if name == b"HGETALL" and len(rest) == 1:
            return ks.hgetall(rest[0])
        if name == b"HDEL" and len(rest) >= 2:
            return sum(ks.hdel(rest[0], field) for field in rest[1:])
        if name in (b"EVAL", b"EVALSHA") and len(rest) >= 2:
            text = rest[0] if name == b"EVAL" else KNOWN_SCRIPTS.get(rest[0].decode(), "")
            declared = twin_of(text)
            if declared is None:
                return LinkError("NOSCRIPT the memory broker has no twin of this script")
            count = int(rest[1])
            return declared.twin(ks, rest[2 : 2 + count], rest[2 + count :])
    except ValueError:
        return LinkError("ERR value is not an integer or out of range")
    return LinkError(f"ERR unknown command {name.decode(errors='replace')!r} for the memory broker")
