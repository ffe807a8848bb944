"""A sharded subscriber whose shard dropped a channel (its slot moved) asks for it again at the
next refresh, even when that refresh read an older slot map that still names this shard."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import wait_until
from tests.subscriber_fakes import INBOX, Writes, subscriber

from wsfleet.bus.cluster_shards import ShardSubscriber


def subscribes(conn: Writes) -> bool:
    return any(b"SSUBSCRIBE" in w and INBOX in w for w in conn.sent)


async def test_a_dropped_channel_is_asked_for_again_at_the_next_refresh() -> None:
    lost: list[int] = []
    sub = subscriber(ShardSubscriber)
    assert isinstance(sub, ShardSubscriber)
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
