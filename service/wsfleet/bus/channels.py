"""The channels a node listens to: permanent ones and reference-counted ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable


class ChannelSet:
    """``wanted`` is the encoded union; ``on_change(wanted)`` runs whenever it changes."""

    __slots__ = ("_counts", "_on_change", "_permanent", "wanted")

    def __init__(self, on_change: Callable[[set[bytes]], None]) -> None:
        self._on_change = on_change
        self._permanent: set[str] = set()
        self._counts: dict[str, int] = {}
        self.wanted: set[bytes] = set()

    def keep(self, channels: Iterable[str]) -> None:
        """Channels wanted for the whole life of the bus (inbox, bridge, presets)."""
        self._permanent.update(channels)
        self._sync()

    def add(self, channel: str) -> None:
        self._counts[channel] = self._counts.get(channel, 0) + 1
        if self._counts[channel] == 1:
            self._sync()

    def discard(self, channel: str) -> None:
        count = self._counts.get(channel, 0) - 1
        if count > 0:
            self._counts[channel] = count
            return
        self._counts.pop(channel, None)
        self._sync()

    def _sync(self) -> None:
        wanted = {c.encode() for c in self._permanent} | {c.encode() for c in self._counts}
        if wanted != self.wanted:
            self.wanted = wanted
            self._on_change(wanted)
