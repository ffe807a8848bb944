"""Which channels a link's subscriber has confirmed, and who waits for which."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Confirmations:
    """Channels confirmed on the current subscriber connection (cleared on reconnect);
    :meth:`wait` resolves once a set of channels is confirmed, or fails on :meth:`fail_all`."""

    __slots__ = ("_waiters", "confirmed")

    def __init__(self) -> None:
        self.confirmed: set[bytes] = set()
        self._waiters: list[tuple[frozenset[bytes], asyncio.Future[None]]] = []

    def covers(self, channels: Iterable[bytes]) -> bool:
        return self.confirmed.issuperset(channels)

    def reset(self) -> None:
        self.confirmed = set()

    def confirm(self, channel: bytes) -> None:
        self.confirmed.add(channel)
        if not self._waiters:
            return
        still = []
        for wanted, future in self._waiters:
            if future.done():
                continue
            if self.confirmed.issuperset(wanted):
                future.set_result(None)
            else:
                still.append((wanted, future))
        self._waiters = still

    def drop(self, channel: bytes) -> None:
        self.confirmed.discard(channel)

    async def wait(self, channels: Iterable[bytes]) -> None:
        wanted = frozenset(channels)
        if self.confirmed.issuperset(wanted):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((wanted, future))
        await future

    def fail_all(self, error: BaseException) -> None:
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()
