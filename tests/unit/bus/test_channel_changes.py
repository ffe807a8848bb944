"""A subscription change costs what changed, not what is held: a node in thousands of rooms
(per-room channels on a Redis Cluster) subscribes the one room it joins, and still replays the
whole set after a reconnect or a refused channel."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import wait_until
from tests.subscriber_fakes import INBOX, Writes, subscriber

from wsfleet.bus.channels import ChannelSet


def test_the_channel_set_reports_only_what_changed() -> None:
    changes: list[tuple[set[bytes], set[bytes]]] = []
    channels = ChannelSet(lambda added, removed: changes.append((set(added), set(removed))))
    channels.keep(["inbox", "bridge"])
    channels.add("room#a")
    channels.add("room#a")  # a second member: no change
    channels.add("bridge")  # counted and permanent: already wanted
    channels.discard("room#a")
    channels.discard("bridge")  # permanent: stays
    channels.discard("room#a")
    channels.discard("room#never")
    assert changes == [
        ({b"inbox", b"bridge"}, set()),
        ({b"room#a"}, set()),
        (set(), {b"room#a"}),
    ]
    assert channels.wanted == {b"inbox", b"bridge"}


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def test_a_joined_room_subscribes_that_channel_alone() -> None:
    sub = subscriber()
    sub.subscribe_batch = 10_000  # the whole set in one command
    conn = Writes()
    sub.conn = conn  # type: ignore[assignment]
    on_push: Any = sub.push_handler(lambda *_: None, lambda _: None)
    task = asyncio.create_task(sub.reconcile_loop())
    held = {b"room#%d" % i for i in range(2000)}
    try:
        sub.set_channels(held | {INBOX})
        await wait_until(lambda: bool(conn.sent))
        (whole,) = conn.take()
        assert whole.startswith(b"*2002\r\n$9\r\nSUBSCRIBE\r\n") and whole.endswith(INBOX + b"\r\n")
        for channel in held | {INBOX}:
            on_push([b"subscribe", channel, 1])

        sub.update_channels({b"room#new"}, set())
        await wait_until(lambda: bool(conn.sent))
        assert conn.take() == [_resp(b"SUBSCRIBE", b"room#new")]

        sub.update_channels(set(), {b"room#7"})
        await wait_until(lambda: bool(conn.sent))
        assert conn.take() == [_resp(b"UNSUBSCRIBE", b"room#7")]

        sub.update_channels({b"room#brief"}, set())  # joined and left in one loop turn
        sub.update_channels(set(), {b"room#brief"})
        sub.update_channels({b"room#last"}, set())
        await wait_until(lambda: bool(conn.sent))
        assert conn.take() == [_resp(b"SUBSCRIBE", b"room#last")]

        sub.forget_unconfirmed()  # a refused channel: everything unconfirmed is asked again
        sub.update_channels({b"room#after"}, set())
        await wait_until(lambda: bool(conn.sent))
        assert conn.take() == [_resp(b"SUBSCRIBE", b"room#after", b"room#last", b"room#new")]
    finally:
        sub.close(RuntimeError("test over"))
        await asyncio.wait_for(task, 2)
