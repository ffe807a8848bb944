"""The subscriber half of a :class:`~wsfleet.bus.redis_link.RedisLink`.

One RESP connection that keeps the set of channels the bus wants: it subscribes the difference
(in batches of :data:`SUBSCRIBE_BATCH`, the link's ``marker`` channel last), replays everything
after a reconnect, confirms each channel, and hands each message to the link's owner as soon as
``hiredis`` has parsed it, inside ``data_received``.

Liveness is judged on evidence: any byte read counts (a subscriber streaming messages is alive even
when its PONG sits behind megabytes of them), and a subscriber is dropped only when nothing at all
was read for ``ping_timeout`` after a PING was written. The verdict is taken a loop turn after the
ping task wakes, so a loop that was blocked reads what is buffered first. A resubscribe of a
connection that still reads (the probe found it deaf to a channel) is graceful: ``UNSUBSCRIBE``
first, and the connection is dropped only once Redis confirmed the last channel left, so every
message Redis sent before is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any, Final

import hiredis

from wsfleet.bus.broker import SUBSCRIBER, BrokerLink, LinkError, LinkHealth, LinkTimings
from wsfleet.bus.confirmations import Confirmations
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.resp import RespConnection, open_connection, pack_command

log = logging.getLogger("wsfleet.bus")

SUBSCRIBE_BATCH: Final = 512
_MESSAGE: Final = b"message"
_SUBSCRIBE: Final = b"subscribe"
_UNSUBSCRIBE: Final = b"unsubscribe"
_PING: Final = pack_command(("PING",))

SetHealth = Callable[[str, bool, str, str | None], None]


class RedisSubscriber:
    # Overridden by the sharded subscriber of a cluster shard (wsfleet.bus.cluster_link).
    subscribe_command = "SUBSCRIBE"
    unsubscribe_command = "UNSUBSCRIBE"
    message_kind = _MESSAGE
    subscribe_kind = _SUBSCRIBE
    unsubscribe_kind = _UNSUBSCRIBE
    subscribe_batch = SUBSCRIBE_BATCH
    """Channels per (UN)SUBSCRIBE (one for SSUBSCRIBE: its channels must share a slot)."""

    def __init__(
        self,
        link: BrokerLink,
        node: RedisNode,
        timings: LinkTimings,
        health: LinkHealth,
        set_health: SetHealth,
    ) -> None:
        self.link = link
        self.node = node
        self.timings = timings
        self.health = health
        self._set_health = set_health
        self.conn: RespConnection | None = None
        self.confirmations = Confirmations()
        self.closed = False
        self._desired: set[bytes] = set()
        self._requested: set[bytes] = set()
        self._full = True
        """The next reconcile compares every wanted channel (a new connection, a whole set, a
        refused channel); otherwise it looks at :attr:`_added` and :attr:`_removed` only."""
        self._added: set[bytes] = set()
        self._removed: set[bytes] = set()
        self._changed = asyncio.Event()
        self._ping_sent: float | None = None
        """Loop time of the PING awaiting evidence (None: nothing awaited)."""
        self._leaving: RespConnection | None = None
        """The connection being resubscribed gracefully (UNSUBSCRIBE sent)."""
        self._leave_timer: asyncio.TimerHandle | None = None
        self._quiet_timer: asyncio.TimerHandle | None = None
        """Waits for the old master to fall quiet before leaving it (:meth:`leave_when_quiet`)."""
        self.liveness_drops = 0
        """Connections dropped because nothing was read after a PING."""

    # -- channels ----------------------------------------------------------------------------

    def set_channels(self, desired: set[bytes]) -> None:
        self._desired = set(desired)
        self._full = True
        self._changed.set()

    def update_channels(self, added: set[bytes], removed: set[bytes]) -> None:
        self._desired |= added
        self._desired -= removed
        if not self._full:
            self._added -= removed
            self._removed -= added
            self._added |= added
            self._removed |= removed
        self._changed.set()

    async def wait_subscribed(self, channels: Iterable[bytes]) -> None:
        if self.closed and not self.confirmations.covers(channels):
            raise LinkError(f"{self.node} was removed")
        await self.confirmations.wait(channels)

    async def reconcile_loop(self) -> None:
        while not self.closed:  # also ends if a library swallowed a cancel
            await self._changed.wait()
            self._changed.clear()
            conn = self.conn
            if conn is None or conn is self._leaving:
                continue
            marker = self.link.marker
            requested, desired = self._requested, self._desired
            if self._full:
                self._full = False
                wanted, unwanted = desired - requested, requested - desired
            else:
                wanted = {c for c in self._added if c in desired and c not in requested}
                unwanted = {c for c in self._removed if c in requested and c not in desired}
            self._added.clear()
            self._removed.clear()
            to_add = sorted(wanted, key=lambda c: (c == marker, c))
            to_drop = sorted(unwanted)
            try:
                batch = self.subscribe_batch
                for i in range(0, len(to_add), batch):
                    chunk = to_add[i : i + batch]
                    conn.write(pack_command((self.subscribe_command, *chunk)))
                    self._requested.update(chunk)
                for i in range(0, len(to_drop), batch):
                    chunk = to_drop[i : i + batch]
                    conn.write(pack_command((self.unsubscribe_command, *chunk)))
                    self._requested.difference_update(chunk)
                    # Not confirmed from now on: a SUBSCRIBE sent before the UNSUBSCRIBE is
                    # answered must be confirmed by its own reply (wait_subscribed).
                    for channel in chunk:
                        self.confirmations.drop(channel)
            except (OSError, RuntimeError) as exc:
                log.debug(
                    "Redis %s: subscription change failed (%s); retried on reconnect",
                    self.node,
                    exc,
                )

    # -- connection --------------------------------------------------------------------------

    def push_handler(
        self, on_message: Callable[[BrokerLink, bytes, bytes], None], on_changed: Any
    ) -> Callable[[Any], None]:
        """The connection's ``on_push``: everything the subscriber receives, parsed, in order."""
        link = self.link
        confirmations = self.confirmations
        message_kind, subscribe_kind = self.message_kind, self.subscribe_kind
        unsubscribe_kind = self.unsubscribe_kind

        def on_push(reply: Any) -> None:
            if type(reply) is list and reply:
                kind = reply[0]
                if kind == message_kind:
                    try:
                        on_message(link, reply[1], reply[2])
                    except Exception:
                        log.exception("bus message handler failed")
                elif kind == subscribe_kind:
                    confirmations.confirm(reply[1])
                    on_changed(link)
                elif kind == unsubscribe_kind:
                    confirmations.drop(reply[1])
                    leaving = self._leaving
                    if reply[1] in self._requested and leaving is None:
                        self.lost_channel(reply[1])  # not asked for: the slot moved away
                    if leaving is not None and leaving is self.conn and reply[2] == 0:
                        leaving.fail(ConnectionResetError("resubscribing"))
            elif isinstance(reply, hiredis.ReplyError):  # e.g. NOPERM: an ACL user without &channel
                self.lost_channel(None)
                self.health.last_error = f"{self.node}: subscribe refused ({reply})"
                log.warning("Redis %s subscriber: %s", self.node, reply)

        return on_push

    async def run(
        self, on_message: Callable[[BrokerLink, bytes, bytes], None], on_changed: Any
    ) -> None:
        """Connect, reconnect with capped exponential backoff, until closed."""
        backoff = self.timings.backoff_initial
        confirmations = self.confirmations
        on_push = self.push_handler(on_message, on_changed)

        while not self.closed:  # also ends if a library swallowed a cancel
            try:
                conn = await open_connection(await self.resolve(), self.timings)
            except (OSError, TimeoutError, LinkError) as exc:
                self._set_health(SUBSCRIBER, False, "error", str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, self.timings.backoff_max)
                continue
            backoff = self.timings.backoff_initial
            conn.on_push = on_push
            self.conn = conn
            self._requested = set()
            self._full = True
            confirmations.reset()
            self._ping_sent = None
            self._changed.set()
            self._set_health(SUBSCRIBER, True, "connect", None)
            try:
                await conn.closed
            except asyncio.CancelledError:
                conn.close()
                raise
            finally:
                self.conn = None
                self._leaving = None
                if self._leave_timer is not None:
                    self._leave_timer.cancel()
                    self._leave_timer = None
                self._requested = set()
                confirmations.reset()
            if not self.closed:
                error = conn.error
                log.warning("Redis %s subscriber failed: %s", self.node, error)
                self._set_health(SUBSCRIBER, False, "error", str(error) or "connection lost")
            self.health.reconnects += 1

    async def resolve(self) -> RedisNode:
        """The address to (re)connect to (a Sentinel-named master is looked up each time)."""
        return self.node

    def forget_unconfirmed(self) -> None:
        """Channels asked for but not confirmed are asked for again at the next
        :meth:`set_channels` (not at once: a refused one would be refused again in a loop)."""
        self._requested &= self.confirmations.confirmed
        self._full = True

    def lost_channel(self, channel: bytes | None) -> None:
        """The server dropped or refused a subscription (a cluster slot moved)."""

    def ping(self, now: float) -> None:
        """One step of the link's ping loop: drop a subscriber from which nothing at all was read
        for ``ping_timeout`` after a PING; otherwise send the next PING."""
        conn = self.conn
        if conn is None or conn is self._leaving:
            return
        sent = self._ping_sent
        if sent is not None and conn.read_at < sent:
            if now - sent > self.timings.ping_timeout:
                log.warning(
                    "Redis %s: nothing read from the subscriber for %.1f s after a PING; "
                    "reconnecting",
                    self.node,
                    now - sent,
                )
                self.liveness_drops += 1
                conn.fail(ConnectionResetError("subscriber stopped answering"))
            return
        self._ping_sent = now
        with contextlib.suppress(OSError, RuntimeError):
            conn.write(_PING)

    def leave_when_quiet(self, quiet: float, longest: float) -> None:
        """The master moved (Sentinel): go on reading the old one while it still brings
        messages — from nodes that have not heard of the switch yet and still publish there,
        since a demoted master keeps serving ``PUBLISH`` — then :meth:`force_resubscribe` once
        nothing was read for ``quiet`` seconds, or after ``longest`` at most. Leaving at once
        lost those messages: nobody listened on the old master any more."""
        conn = self.conn
        if conn is None or conn is self._leaving or self._quiet_timer is not None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + longest

        def check() -> None:
            self._quiet_timer = None
            if self.closed or self.conn is not conn:
                return  # already reconnected (to the new master)
            now = loop.time()
            if now - conn.read_at >= quiet or now >= deadline:
                self.force_resubscribe()
                return
            wait = min(conn.read_at + quiet, deadline) - now
            self._quiet_timer = loop.call_later(wait, check)

        self._quiet_timer = loop.call_later(quiet, check)

    def force_resubscribe(self) -> None:
        """Reconnect and replay every channel, without losing what the connection still reads."""
        conn = self.conn
        if conn is None or conn is self._leaving:
            return
        self._leaving = conn
        try:
            conn.write(pack_command((self.unsubscribe_command,)))
        except (OSError, RuntimeError):
            conn.fail(ConnectionResetError("resubscribing"))
            return
        self._leave_timer = asyncio.get_running_loop().call_later(
            self.timings.ping_timeout, conn.fail, ConnectionResetError("resubscribing")
        )

    def close(self, error: BaseException) -> None:
        self.closed = True
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        self._changed.set()  # reconcile_loop sees `closed` and ends
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.confirmations.fail_all(error)
