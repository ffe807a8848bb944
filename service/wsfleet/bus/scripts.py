"""The bus's Lua scripts, each with a Python twin that brokers other than Redis run instead.

The registry and the socket directory run their read-modify-write steps as ``EVAL`` scripts so
that each is atomic on one Redis node. :func:`script` declares one: the Lua text sent to Redis and
a twin with the same effect on a :class:`Keyspace`, which the in-memory broker
(:mod:`wsfleet.bus.memory`) runs when it receives that ``EVAL``. Values are bytes, as Redis
stores them; integer arguments arrive as their decimal text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Keyspace", "Script", "StreamEntry", "script", "twin_of"]

StreamEntry = tuple[bytes, list[bytes]]
"""A stream entry as ``XRANGE`` returns it: its id and its fields and values, alternating."""


class Keyspace(Protocol):
    """The data commands a script twin may use (Redis semantics, bytes in and out)."""

    def get(self, key: bytes) -> bytes | None: ...
    def set(self, key: bytes, value: bytes, px: int | None = None) -> None: ...
    def pexpire(self, key: bytes, ms: int) -> int: ...
    def delete(self, key: bytes) -> int: ...
    def exists(self, key: bytes) -> bool: ...
    def zadd(self, key: bytes, score: float, member: bytes) -> None: ...
    def zrem(self, key: bytes, member: bytes) -> None: ...
    def zrangebyscore(self, key: bytes, low: float, high: float) -> list[bytes]: ...
    def zremrangebyscore(self, key: bytes, low: float, high: float) -> None: ...
    def hset(self, key: bytes, field: bytes, value: bytes) -> int: ...
    def hget(self, key: bytes, field: bytes) -> bytes | None: ...
    def hdel(self, key: bytes, field: bytes) -> int: ...
    def xadd(self, key: bytes, fields: Sequence[bytes], maxlen: int) -> bytes: ...
    def xrange(self, key: bytes, count: int) -> list[StreamEntry]: ...
    def entries_added(self, key: bytes) -> int: ...
    def publish(self, channel: bytes, data: bytes) -> int: ...


Twin = Callable[[Keyspace, Sequence[bytes], Sequence[bytes]], Any]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    lua: str
    twin: Twin


_BY_TEXT: dict[str, Script] = {}


def script(name: str, lua: str, twin: Twin) -> Script:
    """Declare a script; its Lua text is what ``EVAL`` commands carry."""
    declared = Script(name, lua, twin)
    _BY_TEXT[lua] = declared
    return declared


def twin_of(lua: str | bytes) -> Script | None:
    """The script whose text is ``lua``, also when a node appended its own comment line
    (``-- <boot id>``: its scripts are its own in Redis' script cache)."""
    text = lua.decode() if isinstance(lua, bytes) else lua
    declared = _BY_TEXT.get(text)
    if declared is None:
        head, sep, last = text.rpartition("\n")
        if sep and last.startswith("-- "):
            declared = _BY_TEXT.get(head)
    return declared
