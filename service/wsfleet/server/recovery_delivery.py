"""Delivery with stream positions: what a recovery-enabled node does with every send.

Every message gets a key (its ``wsf`` meta, ``h: 1`` marking that it was written to a history),
is appended to its target's stream by this node in the same script as its publish
(:mod:`wsfleet.bus.history`), and frames to sockets that negotiated recovery carry
``"wsfp":"<tag>/<key>"`` — one stamped frame per message, built on the first recovering
recipient. Other sockets get the unchanged frame. A socket being restored has its frames
buffered (bounded by ``max_send_buffer``; overflow closes it with 4003 and it tries again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wsfleet.bus import envelopes as env
from wsfleet.bus.history import History, Target, entry_key
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.fleet import Fleet
from wsfleet.server.hub import Hub
from wsfleet.server.recovery_session import room_tag, stamped
from wsfleet.server.settings import ServerSettings
from wsfleet.server.socket import Socket


@dataclass(slots=True)
class SessionState:
    """A recovering socket: its session token, and its frames held while it is restored."""

    token: str
    buffering: bool = False
    buffer: list[tuple[str, str, bytes]] = field(default_factory=list)
    buffered_bytes: int = 0
    marked: set[str] = field(default_factory=set)  # tags the session has a mark for


class Stamp:
    __slots__ = ("_frame", "key", "tag", "text")

    def __init__(self, text: bytes, tag: str, key: str | None) -> None:
        self.text, self.tag, self.key = text, tag, key
        self._frame: bytes | None = None

    def frame(self) -> bytes | None:
        if self._frame is None and self.key is not None:
            body = stamped(self.text, self.tag, self.key)
            self._frame = build_text_frame(body) if body is not None else None
        return self._frame


class StampedDelivery:
    """Sends and bus deliveries of a node with recovery on."""

    def __init__(self, hub: Hub, fleet: Fleet, settings: ServerSettings) -> None:
        self.hub, self.fleet, self.bus = hub, fleet, fleet.bus
        self.settings = settings
        self.history = History(fleet.bus, settings.recovery_history_size, settings.recovery_ttl)
        self._states: dict[Socket, SessionState] = {}
        #: Sockets whose frames are held while they are restored (``buffering``).
        self.restoring = 0
        self._inbox_prefix = fleet.settings.inbox_channel("")

    # -- sends of this node ---------------------------------------------------------------------

    def _meta(self) -> tuple[dict[str, Any], str]:
        meta = self.bus.meta()
        meta["h"] = 1
        return meta, f"{meta['b']}.{meta['s']}"

    def _restored(self, state: SessionState) -> None:
        """``state`` no longer holds frames (restored, or gone)."""
        if state.buffering:
            state.buffering = False
            self.restoring -= 1

    def _send(self, socket: Socket, frame: bytes, stamp: Stamp) -> bool:
        state = self._states.get(socket)
        if state is None:
            return socket.send_frame(frame)
        marked = stamp.frame()
        if marked is None or stamp.key is None:
            return socket.send_frame(frame)
        if state.buffering:
            return self._keep(socket, state, stamp.tag, stamp.key, marked)
        return socket.send_frame(marked)

    def _keep(self, socket: Socket, state: SessionState, tag: str, key: str, frame: bytes) -> bool:
        state.buffer.append((tag, key, frame))
        state.buffered_bytes += len(frame)
        if state.buffered_bytes > self.settings.max_send_buffer:
            state.buffer.clear()
            socket.close(CloseCode.SLOW_CONSUMER, "recovery buffer overflow")
            return False
        return True

    def _send_all(self, sockets: Iterable[Socket | None], frame: bytes, stamp: Stamp) -> int:
        """The loop of a fan-out: the plain frame, or the stamped one (built once) to
        recovering sockets, or into the buffer of those being restored."""
        states = self._states
        marked = stamp.frame() if states else None
        key = stamp.key or ""  # set whenever marked is
        sent = 0
        for socket in sockets:
            if socket is None:
                continue
            if marked is None or (state := states.get(socket)) is None:
                ok = socket.send_frame(frame)
            elif state.buffering:
                ok = self._keep(socket, state, stamp.tag, key, marked)
            else:
                ok = socket.send_frame(marked)
            if ok:
                sent += 1
        return sent

    def deliver_room(
        self, namespace: str, room_id: str, text: bytes, key: str | None, exclude: Iterable[str]
    ) -> int:
        excluded = frozenset(exclude)
        get = self.hub.get
        members = self.hub.room_socket_ids(namespace, room_id, exact=True)
        sockets = (get(i) for i in members if i not in excluded)
        stamp = Stamp(text, room_tag(namespace, room_id), key)
        return self._send_all(sockets, build_text_frame(text), stamp)

    def deliver_all(self, text: bytes, key: str | None) -> int:
        stamp = Stamp(text, "b", key)
        if not self.restoring and len(self._states) == self.hub.socket_count:
            marked = stamp.frame()  # every socket recovers, none is held: no lookup each
            if marked is not None:
                return self.hub.deliver_all(marked)
        return self._send_all(self.hub.sockets(), build_text_frame(text), stamp)

    def deliver_ids(self, socket_ids: Iterable[str], text: bytes, key: str | None) -> list[str]:
        frame, stamp = build_text_frame(text), Stamp(text, "d", key)
        missing = []
        for socket_id in socket_ids:
            given: object = socket_id  # callers from untyped code pass anything
            socket = self.hub.get(socket_id) if isinstance(given, str) else None
            if socket is None:
                missing.append(socket_id)
            else:
                self._send(socket, frame, stamp)
        return missing

    def broadcast(self, text: bytes, local_only: bool) -> int:
        meta, key = self._meta()
        sent = self.deliver_all(text, key)
        if not local_only and key is not None:
            message = env.broadcast(text.decode(), self.fleet.name, meta)
            self._append(self.history.broadcast(), message)
        return sent

    def to_room(
        self, namespace: str, room_id: str, text: bytes, exclude: list[str], local_only: bool
    ) -> int:
        meta, key = self._meta()
        sent = self.deliver_room(namespace, room_id, text, key, exclude)
        if not local_only and key is not None:
            message = env.room(text.decode(), namespace, room_id, self.fleet.name, exclude, meta)
            self._append(self.history.room(namespace, room_id), message)
        return sent

    def _append(self, target: Target, message: dict[str, Any]) -> None:
        """Store and publish ``message`` on the target's channel, sealed for it."""
        data = self.bus.auth.seal(self.bus.codec.dumps(message), target.channel)
        self.history.append_publish(target, data)

    def to_ids(self, socket_ids: Iterable[str], text: bytes) -> int:
        sent = 0
        for socket_id in socket_ids:
            if isinstance(socket_id, str):
                sent += self.to_id(socket_id, text)
        return sent

    def to_id(self, socket_id: str, text: bytes) -> bool:
        meta = self.bus.meta()
        meta["h"] = 1
        key = f"{meta['b']}.{meta['s']}"
        local = self.hub.get(socket_id)
        message = env.private_one(text.decode(), socket_id, self.fleet.name, meta)
        envelope = self.bus.codec.dumps(message)
        self.history.append_direct(socket_id, envelope, self._inbox_prefix, route=local is None)
        if local is not None:
            return self._deliver_one(local, text, key)
        return True

    def _deliver_one(self, socket: Socket, text: bytes, key: str | None) -> bool:
        """One socket's direct message: only the frame it gets is built."""
        state = self._states.get(socket)
        if state is None or key is None:
            return socket.send_frame(build_text_frame(text))
        body = stamped(text, "d", key)
        if body is None:
            return socket.send_frame(build_text_frame(text))
        if state.buffering:
            return self._keep(socket, state, "d", key, build_text_frame(body))
        return socket.send_frame(build_text_frame(body))

    # -- what the bus brings ----------------------------------------------------------------------

    def on_room(self, message: dict[str, Any]) -> None:
        parsed = env.parse_room(message)
        text = parsed.frame.encode()
        if parsed.room_id is None:
            self.hub.deliver_room(parsed.namespace, None, build_text_frame(text), parsed.exclude)
            return
        key = entry_key(message)
        self.deliver_room(parsed.namespace, parsed.room_id, text, key, parsed.exclude)

    def on_broadcast(self, message: dict[str, Any]) -> None:
        self.deliver_all(env.parse_broadcast(message).frame.encode(), entry_key(message))

    def on_private(self, message: dict[str, Any]) -> None:
        frame, socket_id = message.get("data"), message.get("socketId")
        if type(frame) is str and type(socket_id) is str and not message.get("socketIds"):
            socket = self.hub.get(socket_id)  # one id: most
            if socket is not None:
                self._deliver_one(socket, frame.encode(), entry_key(message))
            return
        parsed = env.parse_private(message)  # several ids, or invalid (raises)
        self.deliver_ids(parsed.socket_ids, parsed.frame.encode(), entry_key(message))
