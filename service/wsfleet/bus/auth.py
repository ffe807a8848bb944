"""What a node accepts from the bus: the signing policy around :class:`~wsfleet.sealing.Signer`.

- **off** (no key): nothing is signed or checked; anyone who can publish on Redis can forge
  messages. Control messages are still limited by :mod:`wsfleet.bus.trust`. Logged as a warning.
- **signed**: every message this node publishes is signed; every message it receives must carry
  a valid, fresh signature of a known key, or it is dropped and counted by reason.
- **compat** (a key and ``bus_accept_unsigned``): as signed, but unsigned messages that look like
  an original Node.js node's (no ``wsf`` field) on the bridge, broadcast, private, room and
  custom channels are accepted and counted; never control messages, never on an inbox.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsfleet.bus.codec import Serialization
from wsfleet.clock import Clock, sleep
from wsfleet.sealing import FIELD, KeyRing, Signer

if TYPE_CHECKING:
    from wsfleet.bus.settings import FleetSettings

log = logging.getLogger("wsfleet.bus")

MAYBE_ORIGINAL = "maybe-original"


class AuthMode(StrEnum):
    OFF = "off"
    SIGNED = "signed"
    COMPAT = "compat"


class BusAuth:
    __slots__ = ("_key_file", "_seen", "mode", "signer", "unsigned_accepted")

    def __init__(
        self,
        ring: KeyRing | None,
        serialization: Serialization,
        *,
        accept_unsigned: bool = False,
        key_file: Path | None = None,
        max_age: float = 60.0,
    ) -> None:
        self.signer = Signer(ring, serialization, max_age=max_age) if ring else None
        if self.signer is None:
            self.mode = AuthMode.OFF
        else:
            self.mode = AuthMode.COMPAT if accept_unsigned else AuthMode.SIGNED
        self._key_file = key_file
        self._seen = _stamp(key_file)
        self.unsigned_accepted = 0

    @classmethod
    def from_settings(cls, settings: FleetSettings) -> BusAuth:
        """Keys from ``bus_key_file`` or ``WSFLEET_BUS_KEYS``; messages older than the outage
        buffer's limit plus 30 s are refused as replays."""
        return cls(
            KeyRing.load(settings.bus_key_file),
            settings.serialization,
            accept_unsigned=settings.bus_accept_unsigned,
            key_file=settings.bus_key_file,
            max_age=settings.outage_buffer_max_age + 30.0,
        )

    @property
    def key_ids(self) -> list[str]:
        return [] if self.signer is None else list(self.signer.ring.keys)

    @property
    def signing_key_id(self) -> str | None:
        return None if self.signer is None else self.signer.ring.signing_id

    def seal(self, data: bytes, channel: str | None) -> bytes:
        return data if self.signer is None else self.signer.seal(data, channel)

    def check(self, channel: bytes, data: bytes) -> str | None:
        """None to accept, :data:`MAYBE_ORIGINAL` to accept only if :meth:`original_shaped`
        (compat mode), or the reason to refuse the message."""
        if self.signer is None:
            return None
        refused = self.signer.check(channel, data)
        if refused == "unsigned" and self.mode is AuthMode.COMPAT:
            return MAYBE_ORIGINAL
        return refused

    def check_stored(self, channel: bytes, data: bytes) -> str | None:
        """None to accept a message read back from a history stream, else the reason: signed
        by a known key for ``channel`` as on the bus, of any age; never unsigned when signing is
        on (original nodes write no history)."""
        if self.signer is None:
            return None
        return self.signer.check(channel, data, fresh=False)

    def original_shaped(
        self, settings: FleetSettings, channel: str, message: dict[str, Any]
    ) -> bool:
        """Compatibility mode: an unsigned message passes only as an original node sends them
        (no ``wsf`` field, no control action) on the channels original nodes publish on."""
        if "wsf" in message or "action" in message or FIELD in message:
            return False
        kind = settings.channel_kind(channel)
        if kind in ("bridge", "broadcast", "private", "room", "custom"):
            self.unsigned_accepted += 1
            return True
        return False

    async def watch(self, clock: Clock, interval: float) -> None:
        """Re-read the key file every ``interval`` (owned by the bus's task set)."""
        while True:
            await sleep(clock, interval)
            self.reload()

    def announce(self, node: str) -> None:
        if self.mode is AuthMode.OFF:
            log.warning(
                "node %s: bus messages are NOT authenticated (no bus key): anyone who can "
                "publish on Redis can forge them; see docs/security.md",
                node,
            )
        elif self.mode is AuthMode.COMPAT:
            log.warning(
                "node %s: bus compatibility mode: unsigned messages from original nodes are "
                "accepted (signing key %s)",
                node,
                self.signing_key_id,
            )
        else:
            log.info("node %s: bus messages signed with key %s", node, self.signing_key_id)

    def reload(self) -> bool:
        """Re-read the key file when it changed (a rotation step); True when keys changed."""
        if self._key_file is None or self.signer is None:
            return False
        stamp = _stamp(self._key_file)
        if stamp == self._seen:
            return False
        self._seen = stamp
        try:
            ring = KeyRing.load(self._key_file)
        except ValueError as exc:
            log.error("keeping the current bus keys: %s", exc)
            return False
        if ring is None or ring == self.signer.ring:
            return False
        self.signer.use(ring)
        log.info("bus keys now %s (signing with %s)", sorted(ring.keys), ring.signing_id)
        return True


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
