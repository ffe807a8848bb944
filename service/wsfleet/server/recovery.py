"""Connection state recovery (``ServerSettings.recovery``): positions on frames, sessions in
Redis, replay then live on reconnect to any node.

With recovery on, this node's sends go through :class:`Recovery` (the Hub and the bus inbound
delegate to it): every message gets a key (its ``wsf`` meta), is appended to its target's stream
by the publishing node in the same script as its publish (:mod:`wsfleet.bus.history`), and frames
to sockets that negotiated recovery carry ``"wsfp":"<tag>/<key>"`` — one stamped frame per
message, built on the first recovering recipient. Other sockets get the unchanged frame.

A reconnecting socket (``wsf_session`` + ``wsf_pos``) is registered under the session's socket
id at once, but its frames are **buffered**: its rooms are joined and subscriptions confirmed,
then every stream is read; if each position is still there (same epoch, nothing trimmed since)
the missed entries are replayed in stream order, then the buffer is drained skipping what the
streams held. Otherwise the client is told ``recovered: false`` and only live frames follow.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from wsfleet.bus.history import StreamState, Target
from wsfleet.protocol.codec import encode_event
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.fleet import Fleet
from wsfleet.server.hub import Hub
from wsfleet.server.recovery_delivery import SessionState, StampedDelivery
from wsfleet.server.recovery_session import (
    PARAM_POSITIONS,
    PARAM_RECOVER,
    PARAM_SESSION,
    Mark,
    StoredSession,
    parse_positions,
    parse_session,
    room_tag,
    stamped,
    valid_token,
)
from wsfleet.server.settings import ServerSettings
from wsfleet.server.socket import Socket, UpgradeRequest

log = logging.getLogger("wsfleet.recovery")

EVENT = "wsf:recovery"
_PENDING = "wsf_recovery"


@dataclass(slots=True)
class _Pending:
    stored: StoredSession | None
    positions: dict[str, str]
    reason: str | None  # why a resume that was asked for cannot happen


class Recovery(StampedDelivery):
    """Sessions and restores, on top of the node's stamped delivery."""

    def __init__(self, hub: Hub, fleet: Fleet, settings: ServerSettings) -> None:
        super().__init__(hub, fleet, settings)
        self.timeout = settings.recovery_timeout
        self._session_prefix = fleet.settings.bridge_space + ":rs:"
        self._ttl_ms = int(settings.recovery_session_ttl * 1000)
        self._refresher: asyncio.Future[Any] | None = None
        #: Marks being taken (a session's streams as they were when it started listening).
        self.pending_marks = 0

    # -- sessions ---------------------------------------------------------------------------------

    async def admit(self, request: UpgradeRequest, socket_id: str | None) -> str | None:
        """Called after ``authenticate``: a resuming client gets its session's socket id."""
        if request.param(PARAM_RECOVER) != "1":
            return socket_id
        token = request.param(PARAM_SESSION)
        pending = _Pending(None, parse_positions(request.param(PARAM_POSITIONS)), None)
        request.extra[_PENDING] = pending
        if token is None:
            return socket_id
        if not valid_token(token):
            pending.reason = "invalid session"
            return socket_id
        try:
            stored = await self._load(token)
        except (TimeoutError, OSError, ValueError) as exc:
            log.info("recovery session %s… could not be read: %r", token[:6], exc)
            pending.reason = "session unavailable"
            return socket_id
        if stored is None:
            pending.reason = "session expired"
        elif socket_id is not None and socket_id != stored.socket_id:
            pending.reason = "identity changed"
        else:
            pending.stored = stored
            return stored.socket_id
        return socket_id

    async def _load(self, token: str) -> StoredSession | None:
        future = self.bus.execute(("HGETALL", self._session_prefix + token), token)
        assert future is not None
        async with asyncio.timeout(self.timeout):
            return parse_session(token, await future)

    def _store(self, token: str, *fields: Any) -> None:
        key = self._session_prefix + token
        self.bus.execute(("HSET", key, *fields), token, want_result=False)
        self.bus.execute(("PEXPIRE", key, self._ttl_ms), token, want_result=False)

    def registered(self, socket: Socket) -> None:
        """The Hub registered ``socket``: start (or continue) its session."""
        pending = socket.request.extra.pop(_PENDING, None)
        if not isinstance(pending, _Pending) or socket.id is None:
            return
        self._start_refresher()
        if pending.stored is not None:
            state = SessionState(pending.stored.token, buffering=True)
            self.restoring += 1
            state.marked.update(pending.stored.marks)
            self._states[socket] = state
            socket.request.extra[_PENDING] = pending  # for connected()
            return
        token = secrets.token_urlsafe(18)
        state = SessionState(token)
        self._states[socket] = state
        self._store(token, "id", socket.id)
        payload = {"session": token, "resumed": pending.reason is not None, "recovered": False}
        if pending.reason is not None:
            payload["reason"] = pending.reason
        state.marked.update(("d", "b"))
        if self.fleet.tasks.spawn(self._start(socket, state, payload), "wsf-session") is not None:
            self.pending_marks += 2

    async def _start(self, socket: Socket, state: SessionState, payload: dict[str, Any]) -> None:
        """Mark the direct and broadcast streams, then give the client its session: from then
        on, a reconnect can recover."""
        assert socket.id is not None
        await asyncio.gather(
            self._mark(state.token, "d", self.history.direct(socket.id), None, None),
            self._mark(state.token, "b", self.history.broadcast(), None, None),
        )
        if self._states.get(socket) is state:
            socket.send_frame(build_text_frame(encode_event(EVENT, payload)))

    def unregistered(self, socket: Socket) -> None:
        state = self._states.pop(socket, None)
        if state is not None:
            self._restored(state)

    def joined(self, namespace: str, room_id: str, socket_id: str) -> None:
        socket = self.hub.get(socket_id)
        state = self._states.get(socket) if socket is not None else None
        if state is None or state.buffering:  # a restore joins the session's own rooms
            return
        tag = room_tag(namespace, room_id)
        if tag not in state.marked:
            target = self.history.room(namespace, room_id)
            self._spawn_mark(state, tag, target, namespace, room_id)

    def left(self, namespace: str, room_id: str, socket_id: str) -> None:
        socket = self.hub.get(socket_id)
        state = self._states.get(socket) if socket is not None else None
        if state is not None:
            tag = room_tag(namespace, room_id)
            state.marked.discard(tag)
            key = self._session_prefix + state.token
            self.bus.execute(("HDEL", key, "m:" + tag), state.token, want_result=False)

    def _spawn_mark(
        self,
        state: SessionState,
        tag: str,
        target: Target,
        namespace: str | None,
        room_id: str | None,
    ) -> None:
        state.marked.add(tag)
        work = self._mark(state.token, tag, target, namespace, room_id)
        if self.fleet.tasks.spawn(work, "wsf-mark") is not None:
            self.pending_marks += 1

    async def _mark(
        self, token: str, tag: str, target: Target, namespace: str | None, room_id: str | None
    ) -> None:
        try:
            if namespace is not None and room_id is not None:
                await self.fleet.room_confirmed(namespace, room_id, self.timeout)
            state = await self.history.mark(target, self.timeout)
            if state.epoch is not None:
                mark = Mark(namespace, room_id, state.epoch, state.added)
                self._store(token, "m:" + tag, mark.dumps())
        except (TimeoutError, OSError, ValueError) as exc:
            log.info("recovery mark of %s failed: %r", tag, exc)
        finally:
            self.pending_marks -= 1

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = self.fleet.loops.spawn(self._refresh(), "wsf-recovery-sessions")

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recovery_session_ttl / 3)
            for state in list(self._states.values()):
                key = self._session_prefix + state.token
                self.bus.execute(("PEXPIRE", key, self._ttl_ms), state.token, want_result=False)

    def closed(self, socket: Socket) -> None:
        state = self._states.pop(socket, None)
        if state is not None:  # the session lives its time to live from now
            self._restored(state)
            key = self._session_prefix + state.token
            self.bus.execute(("PEXPIRE", key, self._ttl_ms), state.token, want_result=False)

    # -- restore ----------------------------------------------------------------------------------

    async def connected(self, socket: Socket) -> None:
        pending = socket.request.extra.pop(_PENDING, None)
        state = self._states.get(socket)
        if not isinstance(pending, _Pending) or pending.stored is None or state is None:
            return
        try:
            replay, reason = await self._restore(socket, pending.stored, pending.positions)
        except Exception as exc:  # Redis gone, malformed replies: say so, never half-replay
            log.info("recovery of %r failed: %r", socket, exc)
            replay, reason = None, "history unavailable"
        payload: dict[str, Any] = {
            "session": state.token,
            "resumed": True,
            "recovered": replay is not None,
        }
        if reason is not None:
            payload["reason"] = reason
        if replay is not None:
            payload["replayed"] = len(replay[0])
        socket.send_frame(build_text_frame(encode_event(EVENT, payload)))
        if replay is None:  # the client starts over: so do the marks
            self._mark_again(state, pending.stored)
        known: dict[str, set[str]] = replay[1] if replay is not None else {}
        if replay is not None:
            for frame in replay[0]:
                socket.send_frame(frame)
        for tag, key, frame in state.buffer:
            if key not in known.get(tag, ()):
                socket.send_frame(frame)
        state.buffer.clear()
        state.buffered_bytes = 0
        self._restored(state)

    def _mark_again(self, state: SessionState, stored: StoredSession) -> None:
        state.marked.clear()
        self._spawn_mark(state, "d", self.history.direct(stored.socket_id), None, None)
        self._spawn_mark(state, "b", self.history.broadcast(), None, None)
        for mark in stored.marks.values():
            if mark.namespace is not None and mark.room_id is not None:
                target = self.history.room(mark.namespace, mark.room_id)
                tag = room_tag(mark.namespace, mark.room_id)
                self._spawn_mark(state, tag, target, mark.namespace, mark.room_id)

    async def _restore(
        self, socket: Socket, stored: StoredSession, positions: dict[str, str]
    ) -> tuple[tuple[list[bytes], dict[str, set[str]]] | None, str | None]:
        socket_id = stored.socket_id
        namespaces = set()
        targets: dict[str, Target] = {}
        for tag, mark in stored.marks.items():
            if tag == "d":
                targets[tag] = self.history.direct(socket_id)
            elif tag == "b":
                targets[tag] = self.history.broadcast()
            elif mark.namespace is not None and mark.room_id is not None:
                self.hub.join(mark.namespace, mark.room_id, socket_id)
                namespaces.add((mark.namespace, mark.room_id))
                targets[tag] = self.history.room(mark.namespace, mark.room_id)
        for namespace, room_id in namespaces:
            await self.fleet.room_confirmed(namespace, room_id, self.timeout)
        if "d" not in targets or "b" not in targets:
            return None, "session incomplete"
        tags = list(targets)
        states = await asyncio.gather(*(self.history.read(targets[t], self.timeout) for t in tags))
        frames: list[bytes] = []
        known: dict[str, set[str]] = {}
        for tag, stream in zip(tags, states, strict=True):
            entries, reason = _missed(stream, stored.marks[tag], positions.get(tag))
            if entries is None:
                return None, reason
            known[tag] = seen = {entry.key for entry in stream.entries[: -len(entries) or None]}
            for entry in entries:
                if socket_id in entry.exclude or entry.key in seen:
                    continue  # a retried append can store a message twice
                seen.add(entry.key)
                body = stamped(entry.frame.encode(), tag, entry.key)
                if body is not None:
                    frames.append(build_text_frame(body))
        return (frames, known), None


def _missed(
    stream: StreamState, mark: Mark, position: str | None
) -> tuple[list[Any] | None, str | None]:
    """The entries after ``position`` (or after the mark), or None and why not."""
    if stream.epoch != mark.epoch:
        return None, "epoch changed"
    entries = list(stream.entries)
    missed: list[Any] | None = None
    if position is not None:
        for index in range(len(entries) - 1, -1, -1):
            if entries[index].key == position:
                missed = entries[index + 1 :]
                break
        else:
            return None, "position not in history"
    else:
        since = stream.added - mark.added
        if since < 0 or since > len(entries):
            return None, "history trimmed"
        missed = entries[len(entries) - since :] if since else []
    if any(entry.refused for entry in missed):
        return None, "history entry refused"  # forged, or sealed with a key no longer known
    return missed, None
