"""Bounded message history on Redis Streams, written once per message by the publishing node.

Each target has a stream (``<space>:h:r:<namespace>:<room>``, ``<space>:h:d:<socket id>``,
``<space>:h:b`` for broadcasts) and an **epoch** key next to it: a random text created with the
stream. A script appends the entry and publishes the live message in one step on the Redis node
that holds the target's routing key, so the stream's order is the order receivers see on that
node and a receiver never sees a message that is not in the history yet.

An entry holds one field, ``e``: the bus message exactly as it was published (sealed when the
fleet signs its bus, with the scope it was published under), so a message is stored once and a
reader checks its signature as a receiver does (but not its age: history is old by design) and
reads its key (``<sender boot>.<sequence>``, from its ``wsf`` meta, which every receiver knows
without reading Redis), its frame and, for rooms, the excluded socket ids from it. An entry that
fails the check, or does not decode, is kept as *refused*: a recovery across it is refused
rather than partial. Retention: ``MAXLEN ~ size`` and a time to live, refreshed with the epoch's by
the first append of each node to a stream in every :data:`UPKEEP_INTERVAL` (and by any append
that creates the stream), not by every append: that keeps the live path one ``XADD`` and one
``PUBLISH``.
A reader learns the epoch and ``entries-added`` (every entry ever appended under this epoch) with
the entries, in one script: a position taken with :meth:`History.mark` can then tell whether
anything since was trimmed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wsfleet import contract
from wsfleet.bus import cluster_keys
from wsfleet.bus.bus import Bus
from wsfleet.bus.codec import BusDecodeError
from wsfleet.bus.resp import known_script
from wsfleet.bus.scripts import Keyspace, script
from wsfleet.bus.slots import slot_tag

# Appends: KEYS stream, epoch key [, socket key]; ARGV size, ttl ms, the node's epoch prefix
# (an epoch created here is that prefix and the new entry's id), the message, then what to do
# with it (the channel to publish on; for a direct message '1' to route it, the inbox prefix and
# the private channel), and last the upkeep flag: '1' refreshes the epoch and both time to live.
# A node raises it at most once per UPKEEP_INTERVAL per stream; a stream that does not exist yet
# (NOMKSTREAM did not append) always gets its upkeep. Each node appends a comment with its boot
# id (History.__init__): its scripts are its own, loaded by its first EVAL on each Redis node, so
# after a SCRIPT FLUSH no other node's EVAL can reload them between two of this node's calls,
# which resp.RespConnection sends again, in order, as EVAL.
_APPEND = """
local n=#ARGV
local id=redis.call('XADD',KEYS[1],'NOMKSTREAM','MAXLEN','~',ARGV[1],'*','e',ARGV[4])
if not id or ARGV[n]=='1' then
  if not id then id=redis.call('XADD',KEYS[1],'MAXLEN','~',ARGV[1],'*','e',ARGV[4]) end
  local t=ARGV[2]
  if not redis.call('SET',KEYS[2],ARGV[3]..id,'NX','PX',t) then redis.call('PEXPIRE',KEYS[2],t) end
  redis.call('PEXPIRE',KEYS[1],t)
end
"""
_APPEND_PUBLISH = _APPEND + "return redis.call('PUBLISH',ARGV[5],ARGV[4])"
# Redis Cluster: the stream shares the slot of the channel (its key starts with the channel's
# hash tag), so one script appends and publishes; a direct message's stream is the socket's own
# slot, so the script only appends and the message is routed once Redis answered.
_APPEND_SPUBLISH = _APPEND + "return redis.call('SPUBLISH',ARGV[5],ARGV[4])"
_APPEND_ONLY = _APPEND + "return 0"
_APPEND_DIRECT = (
    _APPEND
    + """if ARGV[5]~='1' then return 0 end
local node=redis.call('GET',KEYS[3])
if node then return redis.call('PUBLISH',ARGV[6]..node,ARGV[4]) end
return redis.call('PUBLISH',ARGV[7],ARGV[4])"""
)


def _append_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> None:
    stream, epoch = keys[0], keys[1]
    fresh = not ks.exists(stream)
    entry_id = ks.xadd(stream, [b"e", argv[3]], int(argv[0]))
    if fresh or argv[-1] == b"1":
        ttl = int(argv[1])
        if ks.get(epoch) is None:
            ks.set(epoch, argv[2] + entry_id, px=ttl)
        else:
            ks.pexpire(epoch, ttl)
        ks.pexpire(stream, ttl)


def _append_publish_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> int:
    _append_twin(ks, keys, argv)
    return ks.publish(argv[4], argv[3])


def _append_direct_twin(ks: Keyspace, keys: Sequence[bytes], argv: Sequence[bytes]) -> int:
    _append_twin(ks, keys, argv)
    if argv[4] != b"1":
        return 0
    node = ks.get(keys[2])
    if node is not None:
        return ks.publish(argv[5] + node, argv[3])
    return ks.publish(argv[6], argv[3])


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
    """One stored message: its key, its frame and, for a room, the sockets it excluded.
    ``refused`` marks an entry that failed the signature check or did not decode."""

    key: str
    frame: str
    exclude: tuple[str, ...]
    refused: bool = False


REFUSED = Entry("", "", (), refused=True)


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream as one script saw it: its epoch (None when there is none), the entries appended
    under that epoch, and the entries still kept, oldest first."""

    epoch: str | None
    added: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: its stream key, the routing key of the Redis node holding it, and
    the channel its entries are sealed for (None: a script routed them)."""

    stream: str
    routing_key: str
    channel: str | None

    @property
    def epoch_key(self) -> str:
        return self.stream + ":e"


def entry_key(message: dict[str, Any]) -> str | None:
    """The key of a message written to a history (``wsf`` with ``h: 1``), or None."""
    meta = message.get("wsf")
    if type(meta) is not dict or meta.get("h") != 1:
        return None
    boot, seq = meta.get("b"), meta.get("s")
    if type(boot) is str and type(seq) is int and 0 < len(boot) <= 32:
        return f"{boot}.{seq}"
    return None


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
        self._kept: set[str] = set()  # streams given their upkeep in this interval

    # -- targets ----------------------------------------------------------------------------------

    def room(self, namespace: str, room_id: str) -> Target:
        stream = f"{self._prefix}r:{namespace}:{room_id}"
        settings = self.bus.settings
        if self.sharded:
            channel = settings.room_channel_of(namespace, room_id)
            return Target(slot_tag(channel) + stream, f"room:{namespace}:{room_id}", channel)
        return Target(stream, f"room:{namespace}:{room_id}", settings.room_channel(namespace))

    def direct(self, socket_id: str) -> Target:
        if self.sharded:  # the stream and its epoch key share the socket's tag
            return Target("{" + f"{self._prefix}d:{socket_id}" + "}", socket_id, None)
        return Target(f"{self._prefix}d:{socket_id}", socket_id, None)

    def broadcast(self) -> Target:
        stream = f"{self._prefix}b"
        channel = self.bus.settings.broadcast_channel
        if self.sharded:
            stream = slot_tag(channel) + stream
        return Target(stream, "*broadcast", channel)

    def _upkeep(self, stream: str) -> str:
        """'1' when this node did not refresh ``stream`` within :data:`UPKEEP_INTERVAL`."""
        kept = self._kept
        if stream in kept:
            return "0"
        if not kept:  # bounded: the streams written within one interval
            asyncio.get_running_loop().call_later(UPKEEP_INTERVAL, kept.clear)
        kept.add(stream)
        return "1"

    def _new_epoch(self) -> str:
        self._epoch_seq += 1
        return f"{self.bus.boot}{self._epoch_seq:x}"

    # -- writing ----------------------------------------------------------------------------------

    def append_publish(self, target: Target, data: bytes) -> None:
        """Append ``data`` (sealed for ``target.channel``) and publish it there, in one script."""
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
                data,
                target.channel,
                self._upkeep(stream),
            ),
            target.routing_key,
            want_result=False,
        )

    def append_direct(
        self, socket_id: str, envelope: bytes, inbox_prefix: str, *, route: bool
    ) -> None:
        """Append a direct message's envelope to the socket's stream; with ``route``, route it
        as the socket directory does (the owner's inbox, or the private channel when the owner
        is unknown). Without, the socket is this node's and only the history needs it."""
        bus = self.bus
        envelope = bus.auth.seal(envelope, None)  # a script routes it
        if self.sharded:
            self._append_direct_sharded(socket_id, envelope, inbox_prefix, route)
            return
        stream = self._prefix + "d:" + socket_id
        if route:
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
                envelope,
                "1" if route else "0",
                inbox_prefix,
                self._private_channel,
                self._upkeep(stream),
            ),
            socket_id,
            want_result=False,
        )

    def _append_direct_sharded(
        self, socket_id: str, envelope: bytes, inbox_prefix: str, route: bool
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
                envelope,
                self._upkeep(stream),
            ),
            socket_id,
            want_result=route,
        )
        if not route or appended is None:
            return
        socket_key = self._socket_key + socket_id

        def route_it(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                bus.stats.publish_failures += 1
                return
            cluster_keys.send(bus, socket_key, socket_id, envelope, inbox_prefix)

        appended.add_done_callback(route_it)

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
        return parse_state(reply, self.opener(target))

    def opener(self, target: Target) -> Callable[[bytes], Entry]:
        """Reads the stored messages of ``target`` as a receiver reads them from the bus."""
        auth, codec = self.bus.auth, self.bus.codec
        bound = (target.channel or "").encode()

        def open_entry(data: bytes) -> Entry:
            if auth.check_stored(bound, data) is not None:
                return REFUSED
            try:
                message = codec.loads(data)
            except BusDecodeError:
                return REFUSED
            key, frame = entry_key(message), message.get("data")
            if key is None or type(frame) is not str:
                return REFUSED
            excluded = message.get("excludeSocketIds", [])
            if type(excluded) is not list:
                return REFUSED
            return Entry(key, frame, tuple(e for e in excluded if type(e) is str))

        return open_entry


def parse_state(reply: Any, open_entry: Callable[[bytes], Entry]) -> StreamState:
    """Read a state script's reply, trusting nothing: raises ``ValueError`` when malformed; an
    entry without a readable message is :data:`REFUSED`."""
    if not isinstance(reply, list | tuple) or len(reply) != 3:
        raise ValueError("malformed history reply")
    raw_epoch, raw_added, raw_entries = reply
    epoch = None if raw_epoch is None or raw_epoch is False else _text(raw_epoch)
    added = int(raw_added)
    if not isinstance(raw_entries, list | tuple):
        raise ValueError("malformed history entries")
    return StreamState(epoch, added, tuple(_entry(item, open_entry) for item in raw_entries))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise ValueError(f"unexpected value in a history reply: {value!r}")


def _entry(item: Any, open_entry: Callable[[bytes], Entry]) -> Entry:
    if not isinstance(item, list | tuple) or len(item) != 2:
        raise ValueError("malformed history entry")
    fields: Sequence[Any] = item[1]
    if not isinstance(fields, list | tuple):
        raise ValueError("malformed history entry fields")
    if len(fields) != 2 or fields[0] != b"e" or not isinstance(fields[1], bytes):
        return REFUSED  # not written by this version (or not by a node at all)
    return open_entry(fields[1])
