"""The core of :class:`~wsfleet.server.Server`: event registration, the socket registry,
rooms and sending. No I/O: the transport and the lifecycle build on it."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from wsfleet.listeners import ListenerTable, Tag, register
from wsfleet.protocol.codec import (
    encode_event,
)
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.errors import WsfleetError
from wsfleet.protocol.params import RequestParams, parse_ws_request_params
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.fleet import Fleet
from wsfleet.server.rooms import RoomIndex
from wsfleet.server.settings import DuplicatePolicy, ServerSettings
from wsfleet.server.socket import Acknowledge, Socket, UpgradeRequest
from wsfleet.server.stats import NodeStats
from wsfleet.server.system_events import SYSTEM_EVENTS, SystemEvent

if TYPE_CHECKING:
    from wsfleet.tracing import Tracing

log = logging.getLogger("wsfleet.server")

EventHandler = Callable[[Socket, Any, Acknowledge | None], Any]
SystemHandler = Callable[..., Any]
Authenticator = Callable[[UpgradeRequest], Awaitable[str | None] | str | None]
H = TypeVar("H", bound=Callable[..., Any])

_ids: Final = itertools.count(1)

# System event names as plain module constants: ``SystemEvent.X.value`` goes through the enum's
# descriptors (~0.3 µs), and some of these are looked up for every frame.
_CONNECTION: Final = SystemEvent.CONNECTION.value
_CLOSE: Final = SystemEvent.CLOSE.value
_ERROR: Final = SystemEvent.ERROR.value
_PONG: Final = SystemEvent.PONG.value
_MESSAGE: Final = SystemEvent.MESSAGE.value
_CLIENT_PING: Final = SystemEvent.CLIENT_PING.value
_LISTENING: Final = SystemEvent.LISTENING.value
_SERVER_CLOSE: Final = SystemEvent.SERVER_CLOSE.value


class Refuse(WsfleetError):
    """Raise from an ``authenticate`` hook to refuse the upgrade with an HTTP status."""

    def __init__(self, status: int = 401, reason: str = "Unauthorized") -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"Refuse needs an HTTP error status (400-599), got {status}")
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class DuplicateSocketError(WsfleetError):
    """``set_user_socket`` was refused because the id is live (``DuplicatePolicy.REJECT_NEW``)."""


class UnknownSocketError(WsfleetError, KeyError):
    """A room operation named a socket id that is not registered on this node."""


def _check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{kind} must be a non-empty string, got {value!r}")
    return value


class ServerCore:
    """State and local operations of a node; :class:`Server` builds it."""

    settings: ServerSettings
    stats: NodeStats
    fleet: Fleet | None
    tracing: Tracing | None
    _authenticate: Authenticator | None
    _events: ListenerTable[EventHandler]
    _system: ListenerTable[SystemHandler]
    _connections: set[Socket]
    _sockets: dict[str, Socket]
    _rooms: RoomIndex
    _heartbeat: str
    _heartbeat_frame: bytes
    _ping_task: asyncio.Task[None] | None
    _runner: Any
    _ports: list[int]
    _accepting: bool
    _started: bool
    _draining: bool
    _closed_once: bool
    _fleet_started: bool
    _all_gone: asyncio.Event | None

    # -- event registration ------------------------------------------------------------------

    @overload
    def on(
        self, event: str, handler: None = None, *, tag: Tag | None = None, missing: Any = None
    ) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H, *, tag: Tag | None = None, missing: Any = None) -> H: ...
    def on(
        self, event: str, handler: Any = None, *, tag: Tag | None = None, missing: Any = None
    ) -> Any:
        """Register a handler ``(socket, payload, ack)`` for a client event; usable as a decorator.

        ``ack`` is ``None`` when the client did not ask for one. A handler may also *return* a
        value: if it is not ``None`` and the client asked for an ack that was not sent yet, the
        value is sent as the ack. Handlers may be plain functions or coroutines.

        ``missing`` is the payload the handler gets for a frame without a ``payload`` key
        (JavaScript ``undefined``); ``None`` by default, like ``"payload": null``. With
        ``missing=wsfleet.MISSING`` the two differ, and acking or emitting ``MISSING`` leaves
        ``payload`` out, as the original does for ``undefined``.
        """
        return self._register(self._events, event, handler, once=False, tag=tag, missing=missing)

    def once(
        self, event: str, handler: Any = None, *, tag: Tag | None = None, missing: Any = None
    ) -> Any:
        """Like :meth:`on`, removed after its first call."""
        return self._register(self._events, event, handler, once=True, tag=tag, missing=missing)

    def off(self, event: str, handler_or_tag: EventHandler | Tag | None = None) -> int:
        """Remove client-event handlers: all of ``event``, one function, or those with a tag."""
        return self._events.remove(event, handler_or_tag)

    @overload
    def on_system(
        self, event: SystemEvent | str, handler: None = None, *, tag: Tag | None = None
    ) -> Callable[[H], H]: ...
    @overload
    def on_system(self, event: SystemEvent | str, handler: H, *, tag: Tag | None = None) -> H: ...
    def on_system(
        self, event: SystemEvent | str, handler: Any = None, *, tag: Tag | None = None
    ) -> Any:
        """Register a handler for a system event (see :class:`SystemEvent` for the signatures)."""
        return self._register(self._system, _system_name(event), handler, once=False, tag=tag)

    def once_system(
        self, event: SystemEvent | str, handler: Any = None, *, tag: Tag | None = None
    ) -> Any:
        return self._register(self._system, _system_name(event), handler, once=True, tag=tag)

    def off_system(
        self, event: SystemEvent | str, handler_or_tag: SystemHandler | Tag | None = None
    ) -> int:
        return self._system.remove(_system_name(event), handler_or_tag)

    _register = staticmethod(register)

    # -- the socket registry -----------------------------------------------------------------

    def set_user_socket(self, socket_id: str, socket: Socket) -> None:
        """Accept ``socket`` under ``socket_id``: it can now be addressed, join rooms and receive
        broadcasts. A live socket already holding the id is handled by ``duplicate_policy``."""
        _check_name("socket_id", socket_id)
        if not isinstance(socket, Socket):
            raise TypeError(f"socket must be a wsfleet Socket, got {socket!r}")
        if not socket.is_open:
            raise ValueError(f"{socket!r} is closed and cannot be registered")
        current = self._sockets.get(socket_id)
        if current is socket:
            return
        if socket.id is not None and socket.id != socket_id:
            self._unregister(socket)
        if current is not None:
            self.stats.duplicate_logins += 1
            policy = self.settings.duplicate_policy
            if policy is DuplicatePolicy.REJECT_NEW:
                socket.close(CloseCode.DUPLICATE_LOGIN, "duplicate login")
                raise DuplicateSocketError(f"socket id {socket_id!r} is already connected")
            # The old socket keeps no claim on the id: its close cannot remove the new mapping.
            current.id = None
            if policy is DuplicatePolicy.CLOSE_OLD:
                current.close(CloseCode.DUPLICATE_LOGIN, "logged in elsewhere")
        socket.id = socket_id
        if socket._auth_timer is not None:
            socket._auth_timer.cancel()
            socket._auth_timer = None
        self._sockets[socket_id] = socket
        if self.fleet is not None:
            self.fleet.claim(socket_id)

    def remove_user_socket(self, socket_id: str, socket: Socket | None = None) -> bool:
        """Forget ``socket_id`` and leave all its rooms. With ``socket``, only if the id still
        belongs to that socket. Returns False when nothing was removed."""
        current = self._sockets.get(socket_id)
        if current is None or (socket is not None and current is not socket):
            return False
        self._unregister(current)
        return True

    def _unregister(self, socket: Socket, *, release: bool = True) -> None:
        socket_id = socket.id
        if socket_id is None:
            return
        socket.id = None
        if self._sockets.get(socket_id) is socket:
            del self._sockets[socket_id]
            emptied = self._rooms.remove_socket(socket_id)
            if self.fleet is not None:
                if release:
                    self.fleet.release(socket_id)
                for namespace in emptied:
                    self.fleet.namespace_emptied(namespace)

    def get_socket(self, socket_id: str) -> Socket | None:
        return self._sockets.get(socket_id)

    @property
    def socket_count(self) -> int:
        """Accepted (registered) sockets on this node."""
        return len(self._sockets)

    @property
    def connection_count(self) -> int:
        """Open connections on this node, accepted or not."""
        return len(self._connections)

    def sockets(self) -> list[Socket]:
        return list(self._sockets.values())

    # -- rooms -------------------------------------------------------------------------------

    def join_room(self, namespace: str, room_id: str, socket_id: str) -> None:
        _check_name("namespace", namespace)
        _check_name("room_id", room_id)
        _check_name("socket_id", socket_id)
        Fleet.check_namespace(namespace)
        if socket_id not in self._sockets:
            raise UnknownSocketError(
                f"socket id {socket_id!r} is not registered on this node; "
                "call set_user_socket() before join_room()"
            )
        if self._rooms.join(namespace, room_id, socket_id) and self.fleet is not None:
            self.fleet.namespace_used(namespace)

    async def join_room_confirmed(
        self, namespace: str, room_id: str, socket_id: str, *, timeout: float | None = 5.0
    ) -> None:
        """:meth:`join_room`, then wait until every Redis node confirmed this node's
        subscription to the namespace's channel: a room message published anywhere after this
        returns reaches the socket. Done at once on a single node or when the subscription was
        already confirmed. Raises ``TimeoutError`` after ``timeout`` seconds (the socket is in
        the room all the same; ``None`` waits as long as it takes)."""
        self.join_room(namespace, room_id, socket_id)
        if self.fleet is not None:
            await self.fleet.namespace_confirmed(namespace, timeout)

    def leave_room(self, namespace: str, room_id: str, socket_id: str) -> bool:
        _check_name("namespace", namespace)
        _check_name("room_id", room_id)
        _check_name("socket_id", socket_id)
        was = self._rooms.is_joined(socket_id, namespace, room_id)
        if self._rooms.leave(namespace, room_id, socket_id) and self.fleet is not None:
            self.fleet.namespace_emptied(namespace)
        return was

    def remove_room(self, namespace: str, room_id: str) -> None:
        """Remove a room on this node (its members stay connected)."""
        if self._rooms.remove_room(namespace, room_id) and self.fleet is not None:
            self.fleet.namespace_emptied(namespace)

    def get_socket_count_in_room(
        self, namespace: str, room_id: str | None = None, *, exact: bool = True
    ) -> int:
        return self._rooms.socket_count(namespace, room_id, exact=exact)

    def get_room_socket_ids(
        self, namespace: str, room_id: str | None = None, *, exact: bool = True
    ) -> set[str]:
        return self._rooms.socket_ids(namespace, room_id, exact=exact)

    def get_joined_rooms(
        self, socket_id: str, namespace_prefix: str | None = None
    ) -> dict[str, frozenset[str]]:
        _check_name("socket_id", socket_id)
        return self._rooms.joined_rooms(socket_id, namespace_prefix)

    def is_joined_room(self, socket_id: str, namespace: str, room_id: str | None = None) -> bool:
        return self._rooms.is_joined(socket_id, namespace, room_id)

    def get_room_count(self, namespace: str, *, exact: bool = True) -> int:
        return self._rooms.room_count(namespace, exact=exact)

    def get_room_ids(self, namespace: str, *, exact: bool = True) -> list[str]:
        return self._rooms.room_ids(namespace, exact=exact)

    # -- sending -----------------------------------------------------------------------------

    def broadcast(self, event: str, payload: Any = None, *, local_only: bool = False) -> int:
        """Push an event to every accepted socket of the fleet (encoded once); returns how many
        local sockets got it. With ``local_only``, this node's sockets only."""
        _check_name("event", event)
        text = encode_event(event, payload)
        self.stats.broadcasts += 1
        sent = self._broadcast_frame(build_text_frame(text))
        if self.fleet is not None and not local_only:
            self.fleet.publish_broadcast(text)
        return sent

    def _broadcast_frame(self, frame: bytes) -> int:
        sent = 0
        for socket in list(self._sockets.values()):
            if socket.send_frame(frame):
                sent += 1
        return sent

    def broadcast_to_room(
        self,
        namespace: str,
        room_id: str,
        event: str,
        payload: Any = None,
        *,
        exclude: Iterable[str] = (),
        local_only: bool = False,
        destroy: bool = False,
    ) -> int:
        """Push an event to the members of one room on every node, minus ``exclude``; returns
        local deliveries. With ``destroy``, the room is removed on this node after sending."""
        _check_name("namespace", namespace)
        _check_name("room_id", room_id)
        _check_name("event", event)
        excluded = list(exclude)
        text = encode_event(event, payload)
        sent = self._room_frame(namespace, room_id, build_text_frame(text), excluded)
        if self.fleet is not None and not local_only:
            self.fleet.publish_room(namespace, room_id, text, excluded)
        if destroy:
            self.remove_room(namespace, room_id)
        return sent

    def _room_frame(
        self, namespace: str, room_id: str | None, frame: bytes, exclude: Iterable[str]
    ) -> int:
        if room_id is None:
            members: Iterable[str] = self._rooms.socket_ids(namespace)
        else:
            live = self._rooms.members(namespace, room_id)
            if not live:
                return 0
            members = list(live)
        excluded = exclude if isinstance(exclude, set | frozenset) else frozenset(exclude)
        sockets = self._sockets
        sent = 0
        for socket_id in members:
            if socket_id in excluded:
                continue
            socket = sockets.get(socket_id)
            if socket is not None and socket.send_frame(frame):
                sent += 1
        return sent

    def to_socket_id(self, socket_id: str, event: str, payload: Any = None) -> bool:
        """Push an event to one socket, on whatever node it is connected. True when it was
        written locally or handed to the bus; False when the id is unknown (single node)."""
        _check_name("event", event)
        socket = self._sockets.get(socket_id)
        if socket is not None:
            return socket.send_frame(build_text_frame(encode_event(event, payload)))
        if self.fleet is None:
            return False
        self.fleet.send_private([socket_id], encode_event(event, payload))
        return True

    def to_socket_ids(self, socket_ids: Iterable[str], event: str, payload: Any = None) -> int:
        """Push one event (encoded once) to several sockets, on whatever nodes they are; returns
        how many were written locally."""
        _check_name("event", event)
        text = encode_event(event, payload)
        sent, missing = self._deliver_ids(socket_ids, build_text_frame(text))
        if missing and self.fleet is not None:
            self.fleet.send_private_ids(missing, text)
        return sent

    def _deliver_ids(self, socket_ids: Iterable[str], frame: bytes) -> tuple[int, list[str]]:
        sent = 0
        missing: list[str] = []
        for socket_id in socket_ids:
            key: object = socket_id  # callers from untyped code pass anything
            if not isinstance(key, str):
                continue
            socket = self._sockets.get(socket_id)
            if socket is None:
                missing.append(socket_id)
            elif socket.send_frame(frame):
                sent += 1
        return sent, missing

    @staticmethod
    def parse_ws_request_params(
        url: str | None,
        *,
        lower_case_keys: bool = False,
        parse_path: bool = True,
        strip_leading_slash: bool = True,
    ) -> RequestParams:
        """The original's ``parseWsRequestParams`` on a request target (path + query string)."""
        return parse_ws_request_params(
            url,
            lower_case_keys=lower_case_keys,
            parse_path=parse_path,
            strip_leading_slash=strip_leading_slash,
        )


def _system_name(event: SystemEvent | str) -> str:
    name = event.value if isinstance(event, SystemEvent) else event
    if name not in SYSTEM_EVENTS:
        raise ValueError(
            f"unknown system event {name!r}; expected one of {sorted(SYSTEM_EVENTS)}. "
            "Client events are registered with on()."
        )
    return name
