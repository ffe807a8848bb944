"""Bounded message history on Redis Streams, written once per message by the publishing node.

Each target has a stream (``<space>:h:r:<namespace>:<room>``, ``<space>:h:d:<socket id>``,
``<space>:h:b`` for broadcasts) and an **epoch** key next to it: a random text created with the
stream. A script appends the entry and publishes the live message in one step on the Redis node
that holds the target's routing key, so the stream's order is the order receivers see on that
node and a receiver never sees a message that is not in the history yet.

An entry holds the message's key (``<sender boot>.<sequence>``, from its ``wsf`` meta, so every
receiver knows it without reading Redis), the client frame text and, for rooms, the excluded
socket ids (JSON). Retention: ``MAXLEN ~ size`` and a time to live, refreshed with the epoch's by
the first append of each node to a stream in every :data:`UPKEEP_INTERVAL` (and by any append
that creates the stream), not by every append: that keeps the live path one ``XADD`` and one
``PUBLISH``.
A reader learns the epoch and ``entries-added`` (every entry ever appended under this epoch) with
the entries, in one script: a position taken with :meth:`History.mark` can then tell whether
anything since was trimmed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wsfleet import contract
from wsfleet.bus import cluster_keys
from wsfleet.bus.bus import Bus
from wsfleet.bus.resp import known_script
from wsfleet.bus.scripts import Keyspace, script
from wsfleet.bus.slots import slot_tag

# Appends: KEYS stream, epoch key [, socket key]; ARGV size, ttl ms, the node's epoch prefix
# (an epoch created here is that prefix and the new entry's id), key, frame, excluded ids, then
# what to publish (channel and data; for a direct message the inbox prefix, the envelope and the
# private channel, or nothing to only store it), and last the upkeep flag: '1' refreshes the
# epoch and both time to live. A node raises it at most once per UPKEEP_INTERVAL per stream; a
# stream that does not exist yet always gets its upkeep. Each node appends a comment with its
# boot id (History.__init__): its scripts are its own, loaded by its first EVAL on each Redis
# node, so after a SCRIPT FLUSH no other node's EVAL can reload them between two of this node's
# calls, which resp.RespConnection sends again, in order, as EVAL.
_APPEND = """
local n=#ARGV
local fresh=redis.call('EXISTS',KEYS[1])==0
local id=redis.call('XADD',KEYS[1],'MAXLEN','~',ARGV[1],'*','k',ARGV[4],'f',ARGV[5],'x',ARGV[6])
if fresh or ARGV[n]=='1' then
  local t=ARGV[2]
  if not redis.call('SET',KEYS[2],ARGV[3]..id,'NX','PX',t) then redis.call('PEXPIRE',KEYS[2],t) end
  redis.call('PEXPIRE',KEYS[1],t)
end
"""
_APPEND_PUBLISH = _APPEND + "return redis.call('PUBLISH',ARGV[7],ARGV[8])"
# Redis Cluster: the stream shares the slot of the channel (its key starts with the channel's
# hash tag), so one script appends and publishes; a direct message's stream is the socket's own
# slot, so the script only appends and the message is routed once Redis answered.
_APPEND_SPUBLISH = _APPEND + "return redis.call('SPUBLISH',ARGV[7],ARGV[8])"
_APPEND_ONLY = _APPEND + "return 0"
_APPEND_DIRECT = (
    _APPEND
    + """if ARGV[8]=='' then return 0 end
local node=redis.call('GET',KEYS[3])
if node then return redis.call('PUBLISH',ARGV[7]..node,ARGV[8]) end
return redis.call('PUBLISH',ARGV[9],ARGV[8])"""
)


def _append_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> None:
    stream, epoch = keys[0], keys[1]
    fresh = not ks.exists(stream)
    entry_id = ks.xadd(stream, [b"k", argv[3], b"f", argv[4], b"x", argv[5]], int(argv[0]))
    if fresh or argv[-1] == b"1":
        ttl = int(argv[1])
        if ks.get(epoch) is None:
            ks.set(epoch, argv[2] + entry_id, px=ttl)
        else:
            ks.pexpire(epoch, ttl)
        ks.pexpire(stream, ttl)


def _append_publish_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> int:
    _append_twin(ks, keys, argv)
    return ks.publish(argv[6], argv[7])


def _append_direct_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> int:
    _append_twin(ks, keys, argv)
    if argv[7] == b"":
        return 0
    node = ks.get(keys[2])
    if node is not None:
        return ks.publish(argv[6] + node, argv[7])
    return ks.publish(argv[8], argv[7])


script("history-append-publish", _APPEND_PUBLISH, _append_publish_twin)
script("history-append-direct", _APPEND_DIRECT, _append_direct_twin)


UPKEEP_INTERVAL = 1.0
"""Seconds between two refreshes of one stream's epoch and time to live by one node (at most a
second of a stream's ``recovery_ttl`` is lost to it; every append refreshing them cost S4
a third of its throughput)."""

_STATE = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  if ARGV[1] == '' then return {false, 0, {}} end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  epoch = ARGV[1]
end
local added = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
  end
end
if ARGV[3] == 'mark' then return {epoch, added, {}} end
return {epoch, added, redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[4])}
"""


def _state_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> list[Any]:
    stream, epoch_key = keys[0], keys[1]
    epoch = ks.get(epoch_key)
    if epoch is None:
        if argv[0] == b"":
            return [None, 0, []]
        ks.set(epoch_key, argv[0], px=int(argv[1]))
        epoch = argv[0]
    added = ks.entries_added(stream) if ks.exists(stream) else 0
    if argv[2] == b"mark":
        return [epoch, added, []]
    return [epoch, added, [list(entry) for entry in ks.xrange(stream, int(argv[3]))]]


script("history-state", _STATE, _state_twin)


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    frame: str
    exclude: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream as one script saw it: its epoch (None when there is none), the entries appended
    under that epoch, and the entries still kept, oldest first."""

    epoch: str | None
    added: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: its stream key and the routing key of the Redis node holding it."""

    stream: str
    routing_key: str

    @property
    def epoch_key(self) -> str:
        return self.stream + ":e"


class History:
    """Append and read the streams of one fleet (``bus.settings.bridge_space``)."""

    def __init__(self, bus: Bus, size: int, ttl: float) -> None:
        if size <= 0 or ttl <= 0:
            raise ValueError("history size and ttl must be positive")
        self.bus = bus
        self.size = size
        self.ttl_ms = int(ttl * 1000)
        self._prefix = bus.settings.bridge_space + ":h:"
        self._socket_key = contract.socket_key("", bus.settings.bridge_space)
        self._private_channel = bus.settings.private_channel
        self._epoch_seq = 0
        self._epoch_prefix = f"{bus.boot}-"
        own = f"\n-- {bus.boot}"
        self.sharded = bus.sharded
        if self.sharded:
            self._publish_sha = known_script(_APPEND_SPUBLISH + own)
            self._direct_sha = known_script(_APPEND_ONLY + own)
        else:
            self._publish_sha = known_script(_APPEND_PUBLISH + own)
            self._direct_sha = known_script(_APPEND_DIRECT + own)
        self._kept: set[str] = set()  # streams given their upkeep since _kept_at
        self._kept_at = time.monotonic()

    # -- targets ----------------------------------------------------------------------------------

    def room(self, namespace: str, room_id: str) -> Target:
        stream = f"{self._prefix}r:{namespace}:{room_id}"
        if self.sharded:
            stream = slot_tag(self.bus.settings.room_channel_of(namespace, room_id)) + stream
        return Target(stream, f"room:{namespace}:{room_id}")

    def direct(self, socket_id: str) -> Target:
        if self.sharded:  # the stream and its epoch key share the socket's tag
            return Target("{" + f"{self._prefix}d:{socket_id}" + "}", socket_id)
        return Target(f"{self._prefix}d:{socket_id}", socket_id)

    def broadcast(self) -> Target:
        stream = f"{self._prefix}b"
        if self.sharded:
            stream = slot_tag(self.bus.settings.broadcast_channel) + stream
        return Target(stream, "*broadcast")

    def _upkeep(self, stream: str) -> str:
        """'1' when this node did not refresh ``stream`` within :data:`UPKEEP_INTERVAL`."""
        now = time.monotonic()
        if now - self._kept_at >= UPKEEP_INTERVAL:
            self._kept.clear()  # bounded: the streams written within one interval
            self._kept_at = now
        if stream in self._kept:
            return "0"
        self._kept.add(stream)
        return "1"

    def _new_epoch(self) -> str:
        self._epoch_seq += 1
        return f"{self.bus.boot}{self._epoch_seq:x}"

    # -- writing ----------------------------------------------------------------------------------

    def append_publish(
        self,
        target: Target,
        key: str,
        frame: str,
        exclude: str,
        channel: str,
        data: bytes,
    ) -> None:
        """Append the entry and publish ``data`` on ``channel`` in one script."""
        self.bus.stats.published += 1
        stream = target.stream
        self.bus.execute(
            (
                "EVALSHA",
                self._publish_sha,
                2,
                stream,
                stream + ":e",
                self.size,
                self.ttl_ms,
                self._epoch_prefix,
                key,
                frame,
                exclude,
                channel,
                data,
                self._upkeep(stream),
            ),
            target.routing_key,
            want_result=False,
        )

    def append_direct(
        self, socket_id: str, key: str, frame: str, envelope: bytes | None, inbox_prefix: str
    ) -> None:
        """Append to the socket's stream; with ``envelope``, route it as the socket directory
        does (the owner's inbox, or the private channel when the owner is unknown)."""
        if self.sharded:
            self._append_direct_sharded(socket_id, key, frame, envelope, inbox_prefix)
            return
        stream = self._prefix + "d:" + socket_id
        bus = self.bus
        if envelope is not None:
            envelope = bus.auth.seal(envelope, None)  # a script routes it
            bus.stats.published += 1
        bus.execute(
            (
                "EVALSHA",
                self._direct_sha,
                3,
                stream,
                stream + ":e",
                self._socket_key + socket_id,
                self.size,
                self.ttl_ms,
                self._epoch_prefix,
                key,
                frame,
                "",
                inbox_prefix,
                envelope or b"",
                self._private_channel,
                self._upkeep(stream),
            ),
            socket_id,
            want_result=False,
        )

    def _append_direct_sharded(
        self, socket_id: str, key: str, frame: str, envelope: bytes | None, inbox_prefix: str
    ) -> None:
        """On a Redis Cluster: append on the stream's slot, then, once Redis answered, route the
        envelope as the directory does (answers come in submission order, so one socket's
        messages keep theirs, and none is seen live before it is in the history)."""
        stream = self.direct(socket_id).stream
        bus = self.bus
        appended = bus.execute(
            (
                "EVALSHA",
                self._direct_sha,
                2,
                stream,
                stream + ":e",
                self.size,
                self.ttl_ms,
                self._epoch_prefix,
                key,
                frame,
                "",
                self._upkeep(stream),
            ),
            socket_id,
            want_result=envelope is not None,
        )
        if envelope is None or appended is None:
            return
        socket_key = self._socket_key + socket_id

        def route(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                bus.stats.publish_failures += 1
                return
            cluster_keys.send(bus, socket_key, socket_id, envelope, inbox_prefix)

        appended.add_done_callback(route)

    # -- reading ----------------------------------------------------------------------------------

    async def mark(self, target: Target, timeout: float) -> StreamState:
        """The stream's epoch (created when missing) and entries appended so far."""
        return await self._state(target, "mark", self._new_epoch(), 0, timeout)

    async def read(
        self, target: Target, timeout: float, *, limit: int | None = None
    ) -> StreamState:
        """Epoch, entries appended, and up to ``limit`` (default: all kept) oldest entries."""
        count = limit if limit is not None else self.size * 2 + 100
        return await self._state(target, "read", "", count, timeout)

    async def _state(
        self, target: Target, mode: str, epoch: str, count: int, timeout: float
    ) -> StreamState:
        future = self.bus.execute(
            (
                "EVAL",
                _STATE,
                2,
                target.stream,
                target.epoch_key,
                epoch,
                self.ttl_ms,
                mode,
                count,
            ),
            target.routing_key,
        )
        assert future is not None
        async with asyncio.timeout(timeout):
            reply = await future
        return parse_state(reply)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise ValueError(f"unexpected value in a history reply: {value!r}")


def parse_state(reply: Any) -> StreamState:
    """Read a state script's reply, trusting nothing: raises ``ValueError`` when malformed."""
    if not isinstance(reply, list | tuple) or len(reply) != 3:
        raise ValueError("malformed history reply")
    raw_epoch, raw_added, raw_entries = reply
    epoch = None if raw_epoch is None or raw_epoch is False else _text(raw_epoch)
    added = int(raw_added)
    if not isinstance(raw_entries, list | tuple):
        raise ValueError("malformed history entries")
    return StreamState(epoch, added, tuple(_entry(item) for item in raw_entries))


def _entry(item: Any) -> Entry:
    if not isinstance(item, list | tuple) or len(item) != 2:
        raise ValueError("malformed history entry")
    fields: Sequence[Any] = item[1]
    if not isinstance(fields, list | tuple):
        raise ValueError("malformed history entry fields")
    values = {_text(fields[i]): fields[i + 1] for i in range(0, len(fields) - 1, 2)}
    exclude_text = _text(values.get("x", b""))
    exclude: tuple[str, ...] = ()
    if exclude_text:
        exclude = tuple(part for part in exclude_text.split("\x00") if part)
    return Entry(_text(values.get("k", b"")), _text(values.get("f", b"")), exclude)
