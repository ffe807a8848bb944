"""Client side of connection state recovery (``ConnectorSettings.recover``).

The connector asks for recovery on every connect (``wsf_recover=1``), keeps the session token the
server gives (the ``wsf:recovery`` event) and, per stream, the position of the last frame
received (the ``"wsfp"`` field the server appends to frames of recovering clients), and presents
both on reconnect (``wsf_session``, ``wsf_pos``). After a resume the server says whether the
missed messages follow (system event ``recovery`` with ``recovered=True``) or not (``False``, with
a ``reason``: the application should resync its state).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

EVENT = "wsf:recovery"
_POSITION = re.compile(r'"wsfp":"(d|b|r[0-9a-f]{16})/([0-9a-f]{1,32}\.[0-9]{1,20})"}$')
MAX_STREAMS = 256
RECENT = 256  # keys remembered per stream to drop a message stored twice by a retried append


@dataclass(frozen=True, slots=True)
class RecoveryInfo:
    """Argument of the ``recovery`` event."""

    recovered: bool
    reason: str | None
    replayed: int


class RecoveryState:
    def __init__(self) -> None:
        self.session: str | None = None
        self.positions: dict[str, str] = {}
        self._recent: dict[str, tuple[deque[str], set[str]]] = {}

    def url(self, url: str) -> str:
        params = ["wsf_recover=1"]
        if self.session is not None:
            params.append("wsf_session=" + quote(self.session, safe=""))
            if self.positions:
                items = ",".join(f"{tag}/{key}" for tag, key in self.positions.items())
                params.append("wsf_pos=" + quote(items, safe=""))
        head, hash_mark, fragment = url.partition("#")
        joiner = "&" if "?" in head else "?"
        return head + joiner + "&".join(params) + hash_mark + fragment

    def observe(self, text: str) -> bool:
        """Remember the position a received frame carries, if any; True when the frame is a
        message already received (to be dropped)."""
        if not (text.endswith('"}') and '"wsfp":"' in text):
            return False
        match = _POSITION.search(text)
        if match is None:
            return False
        tag, key = match.group(1), match.group(2)
        recent = self._recent.get(tag)
        if recent is None:
            if len(self._recent) >= MAX_STREAMS:
                return False
            recent = self._recent[tag] = (deque(), set())
        order, seen = recent
        if key in seen:
            return True
        order.append(key)
        seen.add(key)
        if len(order) > RECENT:
            seen.discard(order.popleft())
        self.positions[tag] = key
        return False

    def on_event(self, payload: Any) -> RecoveryInfo | None:
        """The server's ``wsf:recovery`` event; the info to announce after a resume."""
        if not isinstance(payload, dict):
            return None
        session = payload.get("session")
        if isinstance(session, str):
            if session != self.session:
                self.positions.clear()
                self._recent.clear()
            self.session = session
        if payload.get("resumed") is not True:
            return None
        recovered = payload.get("recovered") is True
        if not recovered:
            self.positions.clear()
        reason = payload.get("reason")
        replayed = payload.get("replayed")
        return RecoveryInfo(
            recovered,
            reason if isinstance(reason, str) else None,
            replayed if isinstance(replayed, int) else 0,
        )
