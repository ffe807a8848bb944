"""The operator's only Redis traffic: PING, read the fleet registry, publish a control message.

Each call opens a short-lived connection with tight timeouts: the operator must never hang on a
dead Redis node, and it talks to each node only every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from wsfleet import contract
from wsfleet.sealing import KeyRing, Signer

from . import constants as c
from .model import RedisNodeSpec
from .status import RedisReport

log = logging.getLogger("wsfleet_operator.redis")


@dataclass(frozen=True)
class Target:
    """A Redis node plus the password the operator read from its Secret (if any)."""

    node: RedisNodeSpec
    password: str | None = None
    error: str | None = None  # set when the password could not be read: the node is not tried


def control_channel(bridge_prefix: str) -> str:
    return contract.control_channel(bridge_prefix)


def control_message(addresses: Sequence[str], serialization: str) -> bytes:
    """The ``redis.set`` message, packed like every other message on the fleet's bus.

    Addresses on the bus name hosts only (nodes refuse ``password_file`` and credentials there):
    each pod reads the password of a node from its own ConfigMap line."""
    plain = [address.split("?", 1)[0] for address in addresses]
    return encode_control(contract.redis_set(plain, c.SENDER_NAME), serialization)


def sign_control(payload: bytes, channel: str, keys: str, serialization: str) -> bytes:
    """``payload`` (from :func:`control_message` or :func:`encode_control`) signed for
    ``channel`` with the first key of ``keys`` (the text of the fleet's bus-key Secret:
    ``<key id>:<secret>`` per line), as every node of a fleet with a bus key requires."""
    return Signer(KeyRing.parse(keys, "the bus-key Secret"), serialization).seal(payload, channel)


def encode_control(message: dict[str, Any], serialization: str) -> bytes:
    """A control message (built by :mod:`wsfleet.contract`) in the fleet's serialization."""
    if serialization == "json":
        return orjson.dumps(message)
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def _client(target: Target, timeout: float, verify_tls: bool) -> aioredis.Redis:
    node = target.node
    kwargs: dict[str, Any] = {}
    if node.tls:
        kwargs["ssl"] = True
        kwargs["ssl_cert_reqs"] = "required" if verify_tls else "none"
        kwargs["ssl_check_hostname"] = verify_tls
    return aioredis.Redis(
        host=node.host,
        port=node.port,
        db=node.db,
        password=target.password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # one attempt: the next round is the retry
        **kwargs,
    )


async def _one_node(
    target: Target, prefix: str, timeout: float, verify_tls: bool, now_ms: int
) -> tuple[bool, set[str] | None, str | None]:
    if target.error is not None:
        return False, None, target.error
    client = _client(target, timeout, verify_tls)
    try:
        async with asyncio.timeout(timeout * 3):
            await client.ping()
            nodes_key = contract.nodes_key(prefix)
            members = await client.zrangebyscore(nodes_key, f"({now_ms}", "+inf")
        return True, {m.decode() if isinstance(m, bytes) else str(m) for m in members}, None
    except (OSError, TimeoutError, aioredis.RedisError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        await client.aclose()


async def probe(
    targets: Iterable[Target],
    *,
    bridge_prefix: str,
    timeout: float = 2.0,
    verify_tls: bool = True,
) -> RedisReport:
    """PING every node and count the fleet's live nodes (the union over the nodes that answer)."""
    targets = list(targets)
    now_ms = int(time.time() * 1000)
    results = await asyncio.gather(
        *(_one_node(t, bridge_prefix, timeout, verify_tls, now_ms) for t in targets)
    )
    healthy: dict[str, bool] = {}
    errors: dict[str, str] = {}
    live: set[str] | None = None
    for target, (ok, members, error) in zip(targets, results, strict=True):
        healthy[target.node.key] = ok
        if error is not None:
            errors[target.node.key] = error
        if members is not None:
            live = (live or set()) | members
    return RedisReport(
        healthy=healthy, live_nodes=None if live is None else len(live), errors=errors
    )


async def publish(
    targets: Iterable[Target],
    *,
    channel: str,
    payload: bytes,
    timeout: float = 2.0,
    verify_tls: bool = True,
) -> dict[str, int | str]:
    """PUBLISH on every node; node key -> receivers, or the error text when it failed."""
    targets = list(targets)

    async def one(target: Target) -> int | str:
        if target.error is not None:
            return target.error
        client = _client(target, timeout, verify_tls)
        try:
            async with asyncio.timeout(timeout * 2):
                receivers = await client.publish(channel, payload)
            return int(receivers)
        except (OSError, TimeoutError, aioredis.RedisError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        finally:
            await client.aclose()

    results = await asyncio.gather(*(one(t) for t in targets))
    return {t.node.key: r for t, r in zip(targets, results, strict=True)}
