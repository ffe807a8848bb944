"""The per-shard parts of a cluster link: the sharded subscriber, the command translation and the
``PUBSUB SHARDNUMSUB`` reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wsfleet.bus.redis_py import ResponseError
from wsfleet.bus.redis_subscriber import RedisSubscriber


class ShardSubscriber(RedisSubscriber):
    """``SSUBSCRIBE`` on one shard master."""

    subscribe_command = "SSUBSCRIBE"
    unsubscribe_command = "SUNSUBSCRIBE"
    message_kind = b"smessage"
    subscribe_kind = b"ssubscribe"
    unsubscribe_kind = b"sunsubscribe"
    subscribe_batch = 1

    on_lost: Callable[[], None] = staticmethod(lambda: None)
    """Set by the cluster link: refresh the slot map."""

    def lost_channel(self, channel: bytes | None) -> None:
        self.on_lost()


def translate(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The cluster form of a bus command: ``PUBLISH`` is sharded."""
    if args and args[0] == "PUBLISH":
        return ("SPUBLISH", *args[1:])
    return args


def shardnumsub_count(reply: Any, channel: bytes) -> int:
    """``PUBSUB SHARDNUMSUB`` as redis-py returns it (a list, pairs or a map)."""
    if isinstance(reply, dict):
        for key, value in reply.items():
            if (key.encode() if isinstance(key, str) else key) == channel:
                return int(value)
        return 0
    if isinstance(reply, list | tuple):
        items = list(reply)
        if items and isinstance(items[0], list | tuple):
            return int(items[0][1])
        if len(items) >= 2:
            return int(items[1])
    raise ResponseError(f"unexpected PUBSUB SHARDNUMSUB reply {reply!r}")
