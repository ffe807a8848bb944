"""The history API for rooms (like Centrifugo's channel history): the last messages of a room,
or those after a position, read from the room's stream (``ServerSettings.recovery``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from wsfleet.bus.history import History
from wsfleet.server.errors import check_name
from wsfleet.server.recovery_session import room_tag


class HistoryLostError(LookupError):
    """The position asked for is no longer in the room's history (trimmed, expired, or the
    stream was lost): the caller must resync another way."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    position: str
    """``<tag>/<key>``, as the ``wsfp`` field of the frame that carried it."""
    event: str
    payload: Any


@dataclass(frozen=True, slots=True)
class RoomHistory:
    epoch: str | None
    """The stream's epoch (None when the room has no history)."""
    entries: list[HistoryEntry]
    """Oldest first."""


async def room_history(
    history: History,
    namespace: str,
    room_id: str,
    *,
    limit: int,
    since: str | None,
    timeout: float,
) -> RoomHistory:
    check_name("namespace", namespace)
    check_name("room_id", room_id)
    given: object = limit
    if not isinstance(given, int) or isinstance(given, bool) or limit <= 0:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    tag = room_tag(namespace, room_id)
    state = await history.read(history.room(namespace, room_id), timeout)
    entries = list(state.entries)
    if since is not None:
        key = since.rpartition("/")[2]
        found = [i for i, entry in enumerate(entries) if entry.key == key]
        if not found:
            raise HistoryLostError(f"position {since!r} is not in the history of {room_id!r}")
        entries = entries[found[-1] + 1 :]
    result: list[HistoryEntry] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.refused or entry.key in seen:
            continue
        seen.add(entry.key)
        try:
            frame = orjson.loads(entry.frame)
        except orjson.JSONDecodeError:
            continue
        if isinstance(frame, dict) and isinstance(frame.get("event"), str):
            result.append(HistoryEntry(f"{tag}/{entry.key}", frame["event"], frame.get("payload")))
    return RoomHistory(state.epoch, result[-limit:] if since is None else result[:limit])
