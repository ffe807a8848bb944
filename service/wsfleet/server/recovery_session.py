"""Recovery sessions: what the client presents and what Redis keeps between two connections.

A client that negotiated recovery (``wsf_recover=1``) holds a session token and, per stream, the
key of the last message it received (``wsf_pos``: ``<tag>/<key>`` items joined by ``,``). The
session hash in Redis (``<space>:rs:<token>``, with a time to live) holds the socket id and one
**mark** per stream the session listens to: the room (for room streams), the stream's epoch and
its ``entries-added`` when the session started listening.

Stream tags: ``d`` (the socket's direct messages), ``b`` (broadcasts), ``r<hex>`` (a room).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import orjson

PARAM_RECOVER = "wsf_recover"
PARAM_SESSION = "wsf_session"
PARAM_POSITIONS = "wsf_pos"
FIELD = b"wsfp"

MAX_POSITIONS = 256
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_TAG = re.compile(r"^(d|b|r[0-9a-f]{16})$")
_SPACE = frozenset(b" \t\r\n")
_KEY = re.compile(r"^[0-9a-f]{1,32}\.[0-9]{1,20}$")


def room_tag(namespace: str, room_id: str) -> str:
    digest = hashlib.blake2s(f"{namespace}\x00{room_id}".encode(), digest_size=8).hexdigest()
    return "r" + digest


def valid_token(token: str | None) -> bool:
    return token is not None and _TOKEN.match(token) is not None


def parse_positions(text: str | None) -> dict[str, str]:
    """``wsf_pos`` as ``{tag: key}``; malformed items are ignored, at most
    :data:`MAX_POSITIONS` kept."""
    positions: dict[str, str] = {}
    if not text:
        return positions
    for item in text.split(",")[:MAX_POSITIONS]:
        tag, _, key = item.partition("/")
        if _TAG.match(tag) and _KEY.match(key):
            positions[tag] = key
    return positions


@dataclass(frozen=True, slots=True)
class Mark:
    namespace: str | None
    room_id: str | None
    epoch: str
    added: int

    def dumps(self) -> bytes:
        return orjson.dumps([self.namespace, self.room_id, self.epoch, self.added])


@dataclass(slots=True)
class StoredSession:
    token: str
    socket_id: str
    marks: dict[str, Mark] = field(default_factory=dict)


def parse_session(token: str, reply: object) -> StoredSession | None:
    """A session hash (``HGETALL`` reply, flat or as a dict) or None when absent or malformed."""
    pairs: dict[str, bytes] = {}
    if isinstance(reply, dict):
        items = list(reply.items())
    elif isinstance(reply, list | tuple):
        items = [(reply[i], reply[i + 1]) for i in range(0, len(reply) - 1, 2)]
    else:
        return None
    for name, value in items:
        if isinstance(name, bytes) and isinstance(value, bytes):
            pairs[name.decode("utf-8", "replace")] = value
    raw_id = pairs.pop("id", None)
    if raw_id is None:
        return None
    session = StoredSession(token, raw_id.decode("utf-8", "replace"))
    for name, value in pairs.items():
        if not name.startswith("m:") or not _TAG.match(name[2:]):
            continue
        try:
            namespace, room_id, epoch, added = orjson.loads(value)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            continue
        if (
            isinstance(epoch, str)
            and isinstance(added, int)
            and (namespace is None or isinstance(namespace, str))
            and (room_id is None or isinstance(room_id, str))
        ):
            session.marks[name[2:]] = Mark(namespace, room_id, epoch, added)
    return session


def stamped(text: bytes, tag: str, key: str) -> bytes | None:
    """The client frame with its stream position as a last top-level field, or None when the
    text is not a JSON object."""
    if len(text) < 2 or text[-1] != 0x7D:  # }
        return None
    before = text[-2]
    if before in _SPACE:  # not what wsfleet encodes: look past the white space
        before = (text[:-1].rstrip()[-1:] or b"{")[0]
    comma = b"" if before == 0x7B else b","  # {
    return b"".join((text[:-1], comma, b'"wsfp":"', tag.encode(), b"/", key.encode(), b'"}'))
