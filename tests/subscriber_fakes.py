"""Stand-ins for a Redis subscriber's connection and link, for unit tests of
:class:`~wsfleet.bus.redis_subscriber.RedisSubscriber` and its sharded subclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from wsfleet.bus.broker import LinkHealth, LinkTimings
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_subscriber import RedisSubscriber

INBOX = b"ws:inbox:n1"


@dataclass
class Writes:
    """The subscriber's connection: records what it writes, and when it last read."""

    sent: list[bytes] = field(default_factory=list)
    read_at: float = 0.0

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def fail(self, error: BaseException) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> list[bytes]:
        sent, self.sent = self.sent, []
        return sent


@dataclass
class Link:
    marker: bytes = INBOX


def subscriber(cls: type[RedisSubscriber] = RedisSubscriber) -> RedisSubscriber:
    """A subscriber of ``cls`` for 127.0.0.1:7000, with a stand-in link (no connection yet)."""
    return cls(
        Link(),  # type: ignore[arg-type]
        RedisNode.parse("redis://127.0.0.1:7000"),
        LinkTimings(),
        LinkHealth(),
        lambda *_: None,
    )
