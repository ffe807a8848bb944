"""Which Redis node a message is published through.

``hash`` (default) is rendezvous hashing of the message's routing key (a socket id, a room, a node
name) over the usable Redis nodes: every message for one target goes through the same Redis node,
so it keeps its order, and adding or removing a Redis node moves only the keys it wins or held.
``random``, ``round-robin`` and ``fastest`` are the original's strategies, for compatibility.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, TypeVar


class Strategy(StrEnum):
    HASH = "hash"
    RANDOM = "random"
    ROUND_ROBIN = "round-robin"
    FASTEST = "fastest"


class Candidate(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def latency(self) -> float: ...


def _score(node_key: str, routing_key: str) -> int:
    return zlib.crc32(f"{node_key}|{routing_key}".encode())


C = TypeVar("C", bound=Candidate)


class Router:
    __slots__ = ("_rr", "strategy")

    def __init__(self, strategy: Strategy = Strategy.HASH) -> None:
        self.strategy = Strategy(strategy)
        self._rr = 0

    def pick(self, candidates: Sequence[C], routing_key: str) -> C | None:
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        strategy = self.strategy
        if strategy is Strategy.HASH:
            return max(candidates, key=lambda c: _score(c.key, routing_key))
        if strategy is Strategy.RANDOM:
            return random.choice(candidates)
        if strategy is Strategy.ROUND_ROBIN:
            self._rr %= len(candidates)
            chosen = candidates[self._rr]
            self._rr += 1
            return chosen
        return min(candidates, key=lambda c: c.latency)
