"""The one door to redis-py: Redis' own distributed modes (Cluster slot maps, ``MOVED`` / ``ASK``,
topology refresh; Sentinel discovery) are redis-py's. The hot path stays on our hiredis links."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

__all__ = [
    "ClusterDownError",
    "ClusterNode",
    "ConnectionError",
    "NoBackoff",
    "Redis",
    "RedisCluster",
    "RedisClusterException",
    "RedisError",
    "ResponseError",
    "Retry",
    "Sentinel",
    "TryAgainError",
]
