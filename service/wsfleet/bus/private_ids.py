"""A direct message for several socket ids: one envelope per owning node, one (d) for the rest.

The ids are grouped by the Redis node that holds their directory keys (as every command about an
id goes there, this keeps each socket's messages in order). For each group one script looks the
owners up and publishes, in the same step, one envelope with ``"socketIds": [...]`` to the inbox
of each owning node, and one envelope (d), in the original's format, on the shared
``ws:private_socket`` channel for the ids whose owner is unknown (original nodes read it). With
one Redis node that is exactly one (d), as the original sends.

The script cannot encode, so it receives the encoded envelope cut around the ``socketIds`` value
(``head`` and two ``tail`` s, each with its own sequence number) and each id already encoded; it
writes the array header itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus
from wsfleet.bus.codec import BusCodec, Serialization

#: Ids per script: a script blocks its Redis node while it runs.
MAX_IDS_PER_SCRIPT: Final = 1000

_PLACEHOLDER: Final = "\x00wsfleet:socket-ids\x00"

SEND_MANY: Final = """
local owners, order, unknown = {}, {}, {}
for i, key in ipairs(KEYS) do
  local node = redis.call('GET', key)
  local id = ARGV[6 + i]
  if node then
    local ids = owners[node]
    if not ids then
      ids = {}
      owners[node] = ids
      order[#order + 1] = node
    end
    ids[#ids + 1] = id
  else
    unknown[#unknown + 1] = id
  end
end
local function array(ids)
  if ARGV[3] == 'j' then return '[' .. table.concat(ids, ',') .. ']' end
  local n = #ids
  local header
  if n < 16 then
    header = string.char(0x90 + n)
  elseif n < 65536 then
    header = string.char(0xdc, math.floor(n / 256), n % 256)
  else
    header = string.char(0xdd, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
      math.floor(n / 256) % 256, n % 256)
  end
  return header .. table.concat(ids)
end
for _, node in ipairs(order) do
  redis.call('PUBLISH', ARGV[1] .. node, ARGV[4] .. array(owners[node]) .. ARGV[5])
end
if #unknown > 0 then
  redis.call('PUBLISH', ARGV[2], ARGV[4] .. array(unknown) .. ARGV[6])
end
return #order
"""


def _value_bytes(codec: BusCodec, value: object) -> bytes:
    """How ``value`` is encoded inside a map (the codec has no top-level value encoder)."""
    encoded = codec.dumps({"k": value})
    if codec.mode is Serialization.JSON:
        return encoded[5:-1]  # {"k": ... }
    return encoded[3:]  # fixmap(1), fixstr "k", ...


def _cut(bus: Bus, frame: str, meta: dict[str, object]) -> tuple[bytes, bytes] | None:
    """The encoded (d) envelope before and after its ``socketIds`` array (None if the cut is
    ambiguous, which only odd server names could make)."""
    encoded = bus.codec.dumps(env.private_many(frame, [_PLACEHOLDER], bus.name, meta))
    marker = _value_bytes(bus.codec, [_PLACEHOLDER])
    if encoded.count(marker) != 1:
        return None
    head, tail = encoded.split(marker)
    return head, tail


def send_many(bus: Bus, socket_ids: Iterable[str], frame: str) -> bool:
    """Publish ``frame`` (a client frame's text) for ``socket_ids``, none of them local.

    Returns False (nothing sent) when the envelope cannot be cut; the caller then sends one
    envelope per id.
    """
    if bus.auth.signer is not None:
        return False  # the script assembles the bytes: they could not be signed
    if bus.sharded:
        return False  # Redis Cluster: a script cannot publish to another slot's inbox
    settings = bus.settings
    groups: dict[str | None, list[str]] = {}
    for socket_id in socket_ids:
        link = bus.link_for_key(socket_id)
        groups.setdefault(link.key if link is not None else None, []).append(socket_id)
    chunks = [
        group[start : start + MAX_IDS_PER_SCRIPT]
        for group in groups.values()
        for start in range(0, len(group), MAX_IDS_PER_SCRIPT)
    ]
    scripts = []
    for chunk in chunks:
        # Own sequence numbers per script: a node may get one message from each script.
        cuts = _cuts(bus, frame)
        if cuts is None:
            return False
        scripts.append((chunk, cuts))
    mode = "j" if bus.codec.mode is Serialization.JSON else "m"
    inbox_prefix = settings.inbox_channel("")
    for chunk, (head, inbox_tail, shared_tail) in scripts:
        keys = [settings.key("sock", socket_id) for socket_id in chunk]
        bus.stats.published += 1
        bus.execute(
            (
                "EVAL",
                SEND_MANY,
                len(keys),
                *keys,
                inbox_prefix,
                settings.private_channel,
                mode,
                head,
                inbox_tail,
                shared_tail,
                *(_value_bytes(bus.codec, socket_id) for socket_id in chunk),
            ),
            chunk[0],
            want_result=False,
        )
    return True


def _cuts(bus: Bus, frame: str) -> tuple[bytes, bytes, bytes] | None:
    """``head``, the inbox copies' ``tail`` and the shared (d)'s ``tail``, each tail with its
    own sequence number (every node reads the shared channel: an owner must not drop the (d) as
    a duplicate of its inbox copy)."""
    inbox_meta = bus.meta(bus.settings.private_channel)
    shared_meta = bus.meta()
    if "tp" in inbox_meta:
        shared_meta["tp"] = inbox_meta["tp"]
    inbox_cut = _cut(bus, frame, inbox_meta)
    shared_cut = _cut(bus, frame, shared_meta)
    if inbox_cut is None or shared_cut is None or inbox_cut[0] != shared_cut[0]:
        return None
    return inbox_cut[0], inbox_cut[1], shared_cut[1]
