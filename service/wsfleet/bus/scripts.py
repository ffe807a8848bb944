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

__all__ = ["Keyspace", "Script", "script", "twin_of"]


class Keyspace(Protocol):
    """The data commands a script twin may use (Redis semantics, bytes in and out)."""

    def get(self, key: bytes) -> bytes | None: ...
    def set(self, key: bytes, value: bytes, px: int | None = None) -> None: ...
    def pexpire(self, key: bytes, ms: int) -> None: ...
    def delete(self, key: bytes) -> int: ...
    def zadd(self, key: bytes, score: float, member: bytes) -> None: ...
    def zrem(self, key: bytes, member: bytes) -> None: ...
    def zrangebyscore(self, key: bytes, low: float, high: float) -> list[bytes]: ...
    def zremrangebyscore(self, key: bytes, low: float, high: float) -> None: ...
    def hset(self, key: bytes, field: bytes, value: bytes) -> None: ...
    def hget(self, key: bytes, field: bytes) -> bytes | None: ...
    def hdel(self, key: bytes, field: bytes) -> None: ...
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
    text = lua.decode() if isinstance(lua, bytes) else lua
    return _BY_TEXT.get(text)
