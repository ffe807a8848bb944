"""The channels a node listens to: permanent ones and reference-counted ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable

ChannelsChanged = Callable[[set[bytes], set[bytes]], None]
"""``(added, removed)``: encoded channels that became wanted, and that no longer are."""


class ChannelSet:
    """``wanted`` is the encoded union, kept up to date one channel at a time;
    ``on_change(added, removed)`` runs whenever it changes, with only what changed (a node in
    thousands of rooms pays for the room it joins, not for the rooms it holds)."""

    __slots__ = ("_counts", "_on_change", "_permanent", "wanted")

    def __init__(self, on_change: ChannelsChanged) -> None:
        self._on_change = on_change
        self._permanent: set[str] = set()
        self._counts: dict[str, int] = {}
        self.wanted: set[bytes] = set()

    def keep(self, channels: Iterable[str]) -> None:
        """Channels wanted for the whole life of the bus (inbox, bridge, presets)."""
        added = set()
        for channel in channels:
            if channel not in self._permanent:
                self._permanent.add(channel)
                raw = channel.encode()
                if raw not in self.wanted:
                    self.wanted.add(raw)
                    added.add(raw)
        if added:
            self._on_change(added, set())

    def add(self, channel: str) -> None:
        count = self._counts.get(channel, 0) + 1
        self._counts[channel] = count
        if count == 1 and channel not in self._permanent:
            raw = channel.encode()
            self.wanted.add(raw)
            self._on_change({raw}, set())

    def discard(self, channel: str) -> None:
        count = self._counts.get(channel, 0) - 1
        if count > 0:
            self._counts[channel] = count
            return
        if self._counts.pop(channel, None) is not None and channel not in self._permanent:
            raw = channel.encode()
            self.wanted.discard(raw)
            self._on_change(set(), {raw})
