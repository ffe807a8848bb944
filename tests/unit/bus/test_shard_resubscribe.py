"""A sharded subscriber whose shard dropped a channel (its slot moved) asks for it again at the
next refresh, even when that refresh read an older slot map that still names this shard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import wait_until

from wsfleet.bus.broker import LinkHealth, LinkTimings
from wsfleet.bus.cluster_shards import ShardSubscriber
from wsfleet.bus.nodes import RedisNode

INBOX = b"ws:inbox:n1"


@dataclass
class Writes:
    """Stands in for the subscriber's connection: records what it writes."""

    sent: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


@dataclass
class Link:
    marker: bytes = INBOX


def subscribes(conn: Writes) -> bool:
    return any(b"SSUBSCRIBE" in w and INBOX in w for w in conn.sent)


async def test_a_dropped_channel_is_asked_for_again_at_the_next_refresh() -> None:
    lost: list[int] = []
    sub = ShardSubscriber(
        Link(),  # type: ignore[arg-type]
        RedisNode.parse("redis://127.0.0.1:7000"),
        LinkTimings(),
        LinkHealth(),
        lambda *_: None,
    )
    sub.on_lost = lambda: lost.append(1)
    conn = Writes()
    sub.conn = conn  # type: ignore[assignment]
    on_push: Any = sub.push_handler(lambda *_: None, lambda _: None)
    task = asyncio.create_task(sub.reconcile_loop())
    try:
        sub.set_channels({INBOX})
        await wait_until(lambda: subscribes(conn))
        on_push([b"ssubscribe", INBOX, 1])
        assert sub.confirmations.covers((INBOX,))

        on_push([b"sunsubscribe", INBOX, 0])  # the slot moved away: not asked for
        assert lost == [1]  # the link refreshes its slot map
        assert not sub.confirmations.covers((INBOX,))

        conn.sent.clear()
        sub.set_channels({INBOX})  # a refresh that still names this shard
        await wait_until(lambda: subscribes(conn))
    finally:
        sub.close(RuntimeError("test over"))
        await asyncio.wait_for(task, 2)
