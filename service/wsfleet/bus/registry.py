"""The node registry: each node holds a lease in Redis, refreshed while it lives.

On every Redis node: ``<p>wsfleet:lease:<name>`` (this node's boot id, with a TTL), a sorted set
``<p>wsfleet:nodes`` (name -> lease expiry in ms) and a hash ``<p>wsfleet:nodeinfo`` (name -> JSON
with the node's version, boot id, socket count and the Redis nodes it listens on). Live nodes are
the union over the Redis nodes of the names whose lease has not expired, so a node that dies
vanishes within one ``lease_ttl``, and a clean shutdown removes it at once.

Two live nodes with the same name is an error: the second fails to start, unless it proves it is
the same instance restarted (a container restart after an OOM kill or a failed liveness probe):
a node with an instance token (``FleetSettings.instance_token``: ``WSFLEET_INSTANCE_TOKEN`` or the
pod UID in ``POD_UID``) writes its lease as ``<proof>.<boot id>``, where the proof is a hash of
its name and token, and a lease carrying the same proof is taken over at once.

Other nodes learn that a node left from its goodbye (a ``node.left`` control message sent on a
clean exit) or, after a crash, from its lease expiring; :attr:`Registry.on_left` callbacks run
then (pending calls report ``left``).

A Redis node that restarts comes back empty, so for a moment it lists only the nodes that already
refreshed on it: :meth:`Registry.recent` also remembers every node seen live within one
``lease_ttl`` (what the bus waits for before publishing through a returning Redis node).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from wsfleet import contract
from wsfleet.bus import cluster_keys
from wsfleet.bus.broker import BrokerLink, LinkError
from wsfleet.bus.bus import Bus
from wsfleet.bus.scripts import Keyspace, script
from wsfleet.clock import sleep
from wsfleet.protocol.errors import WsfleetError

log = logging.getLogger("wsfleet.bus")

_REFRESH = """
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif current ~= ARGV[1] then
  local proof = ARGV[7]
  if proof == nil or proof == '' or string.sub(current, 1, string.len(proof)) ~= proof then
    return current
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
return false
"""

_LIVE = """
local names = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local out = {}
for i, name in ipairs(names) do
  out[#out + 1] = name
  out[#out + 1] = redis.call('HGET', KEYS[2], name) or ''
end
return out
"""

_LEAVE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""

_INF = float("inf")


def _refresh_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    lease, nodes, info = keys
    boot, ttl_ms, expiry, name, description, now_ms, *rest = args
    proof = rest[0] if rest else b""
    current = ks.get(lease)
    if current is None:
        ks.set(lease, boot, px=int(ttl_ms))
    elif current != boot:
        if not proof or not current.startswith(proof):
            return current
        ks.set(lease, boot, px=int(ttl_ms))
    else:
        ks.pexpire(lease, int(ttl_ms))
    ks.zadd(nodes, float(expiry), name)
    ks.hset(info, name, description)
    ks.zremrangebyscore(nodes, -_INF, float(now_ms))
    return None


def _live_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    nodes, info = keys
    out: list[bytes] = []
    for name in ks.zrangebyscore(nodes, float(args[0]), _INF):
        out += [name, ks.hget(info, name) or b""]
    return out


def _leave_twin(ks: Keyspace, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:
    lease, nodes, info = keys
    boot, name = args
    if ks.get(lease) == boot:
        ks.delete(lease)
    ks.zrem(nodes, name)
    ks.hdel(info, name)
    return 1


script("registry.refresh", _REFRESH, _refresh_twin)
script("registry.live", _LIVE, _live_twin)
script("registry.leave", _LEAVE, _leave_twin)


class DuplicateNodeError(WsfleetError):
    """Another live node already uses this server name."""


class Registry:
    def __init__(self, bus: Bus, describe: Callable[[], dict[str, Any]]) -> None:
        self.bus = bus
        self.settings = bus.settings
        self.name = bus.name
        self._describe = describe
        self._live: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.conflicts = 0
        token = self.settings.instance_token
        self.proof = (
            hashlib.sha256(f"{self.name}\0{token}".encode()).hexdigest()[:24] + "." if token else ""
        )
        """Prefix of this instance's lease values: a restart with the same token takes over."""
        self.lease_value = self.proof + bus.boot
        self._absent_since: dict[str, float] = {}
        """Nodes missing from the live view, since when (a restarted Redis node lists nobody
        until every node refreshed on it, within one ``lease_refresh``)."""
        self.on_left: list[Callable[[str], object]] = []
        """Called with the name of each node that left (goodbye or lease expiry)."""
        self.left = 0

    @property
    def live(self) -> dict[str, dict[str, Any]]:
        """Live nodes (name -> info) as of the last refresh, this node included."""
        return self._live

    def live_names(self) -> set[str]:
        return set(self._live)

    def recent(self) -> set[str]:
        """Live nodes, and nodes seen live within one ``lease_ttl`` (this node included)."""
        now = self.bus.clock.now()
        for name in [n for n, t in self._seen.items() if now - t > self.settings.lease_ttl]:
            del self._seen[name]
        return set(self._live) | set(self._seen)

    def _keys(self) -> tuple[str, str, str]:
        prefix = self.settings.bridge_space
        if self.bus.sharded:  # Redis Cluster: the three keys share a slot
            return cluster_keys.registry_keys(prefix, self.name)
        return (
            contract.lease_key(self.name, prefix),
            contract.nodes_key(prefix),
            contract.nodeinfo_key(prefix),
        )

    async def start(self) -> None:
        """Register; raises :class:`DuplicateNodeError` if the name is taken by a live node."""
        self._stopping = False
        await self.refresh(raise_on_conflict=True)
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="wsfleet-registry")

    async def aclose(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        lease, nodes, info = self._keys()
        await asyncio.gather(
            *(
                self._call(link, "EVAL", _LEAVE, 3, lease, nodes, info, self.lease_value, self.name)
                for link in self._links()
            ),
            return_exceptions=True,
        )
        await self._say_goodbye()

    async def _say_goodbye(self) -> None:
        """Tell the other nodes at once (they would otherwise wait for the lease to expire)."""
        bus = self.bus
        if not bus.usable_links():
            return
        message = contract.control_envelope(
            contract.ControlAction.NODE_LEFT, {"boot": bus.boot}, self.name, bus.meta()
        )
        future = bus.publish(self.settings.control_channel, message, "*control", want_result=True)
        if future is not None:
            try:
                async with asyncio.timeout(self.settings.command_timeout):
                    await future
            except (TimeoutError, WsfleetError) as exc:
                log.debug("goodbye not sent: %r", exc)

    def node_left(self, name: str | None, boot: object = None) -> None:
        """``name`` said goodbye (from its instance ``boot``), or its lease expired: forget it
        now. A goodbye from an older instance than the one registered now is ignored."""
        if not name or name == self.name:
            return
        info = self._live.get(name)
        if boot is not None and info is not None and info.get("boot") not in (None, boot):
            return
        known = name in self._live or name in self._seen or name in self._absent_since
        self._absent_since.pop(name, None)
        self._live.pop(name, None)
        self._seen.pop(name, None)
        if known:
            self.left += 1
            log.info("node %s left the fleet", name)
            for callback in self.on_left:
                try:
                    callback(name)
                except Exception:
                    log.exception("node-left callback failed")
            self.bus.peers_changed()

    def _links(self) -> list[BrokerLink]:
        return [link for link in self.bus.links.values() if link.keys_reachable]

    async def _call(self, link: BrokerLink, *args: Any) -> Any:
        return await link.call(*args, timeout=self.settings.command_timeout)

    async def refresh(self, *, raise_on_conflict: bool = False) -> None:
        lease, nodes, info = self._keys()
        ttl_ms = int(self.settings.lease_ttl * 1000)
        now_ms = int(time.time() * 1000)
        description = orjson.dumps(
            {**self._describe(), "boot": self.bus.boot, "redis": self.bus.subscribed_on()}
        )
        live: dict[str, dict[str, Any]] = {}
        answered = False
        for link in self._links():
            try:
                holder = await self._call(
                    link,
                    "EVAL",
                    _REFRESH,
                    3,
                    lease,
                    nodes,
                    info,
                    self.lease_value,
                    ttl_ms,
                    now_ms + ttl_ms,
                    self.name,
                    description,
                    now_ms,
                    self.proof,
                )
                if holder is not None:
                    self.conflicts += 1
                    message = (
                        f"another live node is already named {self.name!r} (Redis {link.node}); "
                        "give every node a unique server name (POD_NAME, --server-name)"
                    )
                    if raise_on_conflict:
                        raise DuplicateNodeError(message)
                    log.error("%s", message)
                flat = await self._call(link, "EVAL", _LIVE, 2, nodes, info, now_ms)
            except (LinkError, TimeoutError) as exc:
                log.debug("registry refresh on %s failed: %r", link.node, exc)
                continue
            answered = True
            for i in range(0, len(flat), 2):
                name = flat[i].decode()
                raw = flat[i + 1]
                try:
                    live[name] = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError:
                    live[name] = {}
        now = self.bus.clock.now()
        if answered:
            absent = self._absent_since
            for name in live:
                self._seen[name] = now
                absent.pop(name, None)
            for name in self._live:
                if name not in live:
                    absent.setdefault(name, now)
            self._live = live
            # Its lease expired: missing for longer than every live node takes to refresh.
            for name, since in list(absent.items()):
                if now - since >= 1.5 * self.settings.lease_refresh:
                    self.node_left(name)
        else:
            for name in self._live:  # no Redis node to ask: the last view still holds
                self._seen[name] = now
        self.bus.peers_changed()

    async def _loop(self) -> None:
        while not self._stopping:  # a cancellation swallowed by a library still ends the loop
            await sleep(self.bus.clock, self.settings.lease_refresh)
            try:
                await self.refresh()
            except Exception:
                log.exception("registry refresh failed")
