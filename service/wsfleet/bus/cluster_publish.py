"""The hot path of a cluster link: one hiredis publisher per shard master.

redis-py's cluster pipeline costs about 22 µs of client CPU per command here, our pipelined
hiredis publisher about 3 µs (``python -m bench.cluster_links``, docs/benchmarks.md), so the
cluster link keeps redis-py for what it does well - the slot map, its refresh and ``PUBSUB
SHARDNUMSUB`` - and sends every command itself, to the master that owns the command's slot:
``SPUBLISH`` by its channel, keyed commands by their first key.

- Commands for one shard go out on one connection, in submission order (one
  :class:`ShardPublisher` per master, batching every command of a loop turn).
- Each command travels wrapped with its own future. A reply resolves the original command; a
  ``MOVED`` / ``ASK`` / ``TRYAGAIN`` / ``CLUSTERDOWN`` error, or the loss of the shard's
  connection, hands the original back to the owner (which hands it to the bus and refreshes the
  slot map), in the order the commands were submitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from wsfleet.bus.broker import PUBLISHER, BrokerLink, Command, LinkError
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.slots import key_slot

log = logging.getLogger("wsfleet.bus")

Address = tuple[str, int]

_REDIRECTS: Final = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")
_KEYED_AT_1: Final = frozenset({"PUBLISH", "SPUBLISH", "GET", "SET", "DEL", "PEXPIRE", "EXPIRE"})


def command_slot(args: tuple[Any, ...]) -> int:
    """The hash slot a command must run on (0 for commands without a key, such as PING)."""
    name = str(args[0]).upper() if args else ""
    key: Any = None
    if name in _KEYED_AT_1 and len(args) > 1:
        key = args[1]
    elif name in ("EVAL", "EVALSHA") and len(args) > 3 and int(args[2]) > 0:
        key = args[3]
    if key is None:
        return 0
    return key_slot(key.encode() if isinstance(key, str) else bytes(key))


def sharded(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return ("SPUBLISH", *args[1:]) if args and args[0] == "PUBLISH" else args


class ShardPublisher(RedisLink):
    """The publisher half of a :class:`RedisLink` on one shard master (no subscriber)."""

    def start(self) -> None:
        if self.closed or self._tasks:
            return
        self._tasks = {
            asyncio.create_task(self._publisher_loop(), name=f"wsfleet-shard-pub-{self.key}"),
            asyncio.create_task(self._ping_loop(), name=f"wsfleet-shard-ping-{self.key}"),
        }


class ShardPublishers:
    """One :class:`ShardPublisher` per master, and the commands in flight on them."""

    def __init__(
        self,
        template: RedisNode,
        link: BrokerLink,
        on_back: Callable[[list[Command], BaseException], None],
        on_health: Callable[[], None],
        on_drained: Callable[[], None],
    ) -> None:
        self.template = template
        self.link = link
        self.timings = link.timings  # type: ignore[attr-defined]
        self._on_back = on_back
        self._on_health = on_health
        self._on_drained = on_drained
        self.shards: dict[Address, ShardPublisher] = {}
        self.inflight: dict[asyncio.Future[Any], Command] = {}
        self._redirected: list[Command] = []
        self._redirect_error: BaseException | None = None
        self.batches = 0

    @property
    def healthy(self) -> bool:
        return bool(self.shards) and all(p.publisher_healthy for p in self.shards.values())

    def set_masters(self, masters: set[Address]) -> list[ShardPublisher]:
        """Open publishers to new masters; return the ones to close (no longer masters)."""
        gone = [self.shards.pop(a) for a in list(self.shards) if a not in masters]
        for host, port in masters - set(self.shards):
            node = RedisNode(
                host=host,
                port=port,
                username=self.template.username,
                password=self.template.password,
                tls=self.template.tls,
            )
            publisher = ShardPublisher(node, _ShardEvents(self), timings=self.timings)
            self.shards[(host, port)] = publisher
            publisher.start()
        return gone

    def send(self, command: Command, owner: Address | None) -> bool:
        """Send ``command`` to ``owner``; False when that master has no healthy publisher."""
        publisher = self.shards.get(owner) if owner is not None else None
        if publisher is None or not publisher.publisher_healthy:
            return False
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inflight[future] = command
        future.add_done_callback(self._answered)
        publisher.submit(Command(sharded(command.args), future, pinned=True, retry=False))
        return True

    def _answered(self, future: asyncio.Future[Any]) -> None:
        command = self.inflight.pop(future, None)
        if command is None or future.cancelled():
            return
        error = future.exception()
        if error is not None and str(error).startswith(_REDIRECTS):
            if not self._redirected:
                asyncio.get_running_loop().call_soon(self._hand_back_redirected)
            self._redirected.append(command)
            self._redirect_error = error
            return
        original = command.future
        if original is None or original.done():
            if error is not None:
                log.warning("Redis Cluster: %s failed: %s", command.args[0], error)
        elif error is not None:
            original.set_exception(error)
        else:
            original.set_result(future.result())
        if not self.inflight:
            self._on_drained()

    def _hand_back_redirected(self) -> None:
        commands, self._redirected = self._redirected, []
        error = self._redirect_error or LinkError("redirected")
        if commands:
            self._on_back(commands, error)

    def failed(self, inner: list[Command], error: BaseException) -> None:
        originals = []
        for command in inner:
            future = command.future
            if future is not None:
                original = self.inflight.pop(future, None)
                future.cancel()
                if original is not None:
                    originals.append(original)
        if originals:
            self._on_back(originals, error)

    def health_changed(self, role: str) -> None:
        if role == PUBLISHER:
            self._on_health()

    def changed(self) -> None:
        self.batches = sum(p.batches for p in self.shards.values())
        if not self.inflight:
            self._on_drained()

    def take_all(self) -> list[Command]:
        """Everything in flight, in submission order (the link is closing)."""
        commands = list(self.inflight.values())
        for future in list(self.inflight):
            future.cancel()
        self.inflight.clear()
        return commands


class _ShardEvents:
    """What a shard's publisher reports, for :class:`ShardPublishers`."""

    __slots__ = ("owner",)

    def __init__(self, owner: ShardPublishers) -> None:
        self.owner = owner

    def on_link_message(self, link: BrokerLink, channel: bytes, data: bytes) -> None:
        pass

    def on_link_health(
        self, link: BrokerLink, role: str, healthy: bool, event: str, error: str | None
    ) -> None:
        self.owner.health_changed(role)

    def on_link_failed(
        self, link: BrokerLink, commands: list[Command], error: BaseException
    ) -> None:
        self.owner.failed(commands, error)

    def on_link_changed(self, link: BrokerLink) -> None:
        self.owner.changed()
