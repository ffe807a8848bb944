"""Where each socket id is connected: ``<p>wsfleet:sock:<id>`` -> node name, with a lease.

A key lives on the Redis node that the socket id hashes to, and every command about that id goes
to the same node, so a claim, a direct message and a release for one socket stay in order.

- ``claim`` writes the location and, when another node held the id, publishes a ``duplicate``
  control message to that node's inbox in the same script (the cluster-wide duplicate login).
- ``send`` looks the node up and publishes to its inbox in one script; an unknown id falls back
  to the shared ``ws:private_socket`` channel, which original nodes also read.
- Keys expire after ``lease_ttl`` unless refreshed, so a dead node's sockets vanish by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from wsfleet import contract
from wsfleet.bus import cluster_keys
from wsfleet.bus.broker import Command, LinkError
from wsfleet.bus.bus import Bus
from wsfleet.bus.scripts import Keyspace, script
from wsfleet.protocol.errors import WsfleetError

log = logging.getLogger("wsfleet.bus")

_CLAIM = """
local previous = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'GET')
if previous and previous ~= ARGV[1] then
  redis.call('PUBLISH', ARGV[3] .. previous, ARGV[4])
end
return previous
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_REFRESH = """
local lost = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif current == false then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost = lost + 1
  end
end
return lost
"""

_SEND = """
local node = redis.call('GET', KEYS[1])
if node then return redis.call('PUBLISH', ARGV[1] .. node, ARGV[2]) end
return redis.call('PUBLISH', ARGV[3], ARGV[2])
"""


def _claim_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    name, ttl_ms, inbox_prefix, notice = args
    previous = ks.get(keys[0])
    ks.set(keys[0], name, px=int(ttl_ms))
    if previous is not None and previous != name:
        ks.publish(inbox_prefix + previous, notice)
    return previous


def _release_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    return ks.delete(keys[0]) if ks.get(keys[0]) == args[0] else 0


def _refresh_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    name, ttl_ms = args
    lost = 0
    for key in keys:
        current = ks.get(key)
        if current == name:
            ks.pexpire(key, int(ttl_ms))
        elif current is None:
            ks.set(key, name, px=int(ttl_ms))
        else:
            lost += 1
    return lost


def _send_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    inbox_prefix, envelope, private_channel = args
    node = ks.get(keys[0])
    if node is not None:
        return ks.publish(inbox_prefix + node, envelope)
    return ks.publish(private_channel, envelope)


script("directory.claim", _CLAIM, _claim_twin)
script("directory.release", _RELEASE, _release_twin)
script("directory.refresh", _REFRESH, _refresh_twin)
script("directory.send", _SEND, _send_twin)

REFRESH_BATCH = 500


class SocketDirectory:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.settings = bus.settings
        self._inbox_prefix = self.settings.inbox_channel("")
        self._ttl_ms = int(self.settings.lease_ttl * 1000)
        self._key_prefix = contract.socket_key("", self.settings.bridge_space)
        self._private_channel = self.settings.private_channel

    def _key(self, socket_id: str) -> str:
        return self._key_prefix + socket_id

    def claim(self, socket_id: str, duplicate_notice: bytes) -> None:
        if self.bus.sharded:  # Redis Cluster (wsfleet.bus.cluster_keys)
            cluster_keys.claim(
                self.bus,
                self._key(socket_id),
                socket_id,
                self._ttl_ms,
                duplicate_notice,
                self._inbox_prefix,
            )
            return
        duplicate_notice = self.bus.auth.seal(duplicate_notice, None)  # a script routes it
        self.bus.execute(
            (
                "EVAL",
                _CLAIM,
                1,
                self._key(socket_id),
                self.bus.name,
                self._ttl_ms,
                self._inbox_prefix,
                duplicate_notice,
            ),
            socket_id,
            want_result=False,
        )

    def release(self, socket_id: str) -> None:
        self.bus.execute(
            ("EVAL", _RELEASE, 1, self._key(socket_id), self.bus.name), socket_id, want_result=False
        )

    def send(self, socket_id: str, envelope: bytes) -> None:
        """Deliver a private-message envelope to the node holding ``socket_id``."""
        if self.bus.sharded:  # Redis Cluster (wsfleet.bus.cluster_keys)
            cluster_keys.send(
                self.bus, self._key(socket_id), socket_id, envelope, self._inbox_prefix
            )
            return
        envelope = self.bus.auth.seal(envelope, None)  # a script routes it
        self.bus.stats.published += 1
        self.bus.execute(
            (
                "EVAL",
                _SEND,
                1,
                self._key(socket_id),
                self._inbox_prefix,
                envelope,
                self._private_channel,
            ),
            socket_id,
            want_result=False,
        )

    async def send_confirmed(self, socket_id: str, envelope: bytes) -> bool:
        """:meth:`send`, waiting for Redis' answer: False when the node holding ``socket_id``
        does not listen any more (it crashed or left: nobody is subscribed to its inbox), or
        when no Redis node answered within ``command_timeout``."""
        self.bus.stats.published += 1
        future = self.bus.execute(
            (
                "EVAL",
                _SEND,
                1,
                self._key(socket_id),
                self._inbox_prefix,
                envelope,
                self._private_channel,
            ),
            socket_id,
        )
        assert future is not None
        try:
            async with asyncio.timeout(self.settings.command_timeout * 2):  # not wait_for (3.11)
                receivers = await future
        except (TimeoutError, LinkError, WsfleetError):
            return False
        return isinstance(receivers, int) and receivers > 0

    async def locate(self, socket_id: str) -> str | None:
        future = self.bus.execute(("GET", self._key(socket_id)), socket_id)
        assert future is not None
        async with asyncio.timeout(self.settings.command_timeout * 2):  # not wait_for (3.11)
            value = await future
        return value.decode() if isinstance(value, bytes) else None

    async def refresh(self, socket_ids: Iterable[str]) -> int:
        """Extend the lease of every local socket (re-creating lost keys); returns how many ids
        are now held by another node."""
        by_link: dict[str, list[str]] = defaultdict(list)
        links = {}
        for socket_id in socket_ids:
            link = self.bus.lease_link(socket_id)
            if link is not None:
                by_link[link.key].append(self._key(socket_id))
                links[link.key] = link
        futures = []
        loop = asyncio.get_running_loop()
        for key, keys in by_link.items():
            if self.bus.sharded:  # Redis Cluster: one script per slot
                chunks = cluster_keys.slot_chunks(keys, REFRESH_BATCH)
            else:
                chunks = [keys[i : i + REFRESH_BATCH] for i in range(0, len(keys), REFRESH_BATCH)]
            for chunk in chunks:
                future: asyncio.Future[object] = loop.create_future()
                links[key].submit(
                    Command(
                        ("EVAL", _REFRESH, len(chunk), *chunk, self.bus.name, self._ttl_ms),
                        future,
                        pinned=True,
                    )
                )
                futures.append(future)
        lost = 0
        try:
            # bounded: a shard failing over must not stall the refresh of the others' leases
            bound = max(self.settings.command_timeout * 2, self.settings.lease_refresh)
            async with asyncio.timeout(bound):
                results = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            log.debug("socket lease refresh: not every Redis node answered in time")
            results = [
                f.result()
                for f in futures
                if f.done() and not f.cancelled() and f.exception() is None
            ]
        for result in results:
            if isinstance(result, int):
                lost += result
            elif isinstance(result, LinkError | TimeoutError):
                log.debug("socket lease refresh failed: %r", result)
        return lost
