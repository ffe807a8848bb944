"""``Server``: a wsfleet node's WebSocket side - events with acks, sockets, rooms, broadcasts.

Everything here is transport-agnostic: the aiohttp adapter (``wsfleet.server.transport``) calls
``_open`` / ``_on_frame`` / ``_closed``; applications call the public methods. Client events and
system events live in separate tables, so a client frame ``{"event": "close"}`` can never run a
``close`` handler (W11 of the original).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from time import perf_counter
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, Final, TypeGuard, TypeVar, overload

from wsfleet.bus.settings import FleetSettings
from wsfleet.latency import OTHER_EVENT, LatencyHistogram
from wsfleet.listeners import ListenerTable, Tag, register
from wsfleet.protocol.codec import (
    ClientEvent,
    encode_event,
)
from wsfleet.protocol.codec import decode_client_frame as _decode
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.errors import FrameError, WsfleetError
from wsfleet.protocol.params import RequestParams, parse_ws_request_params
from wsfleet.protocol.wsframe import PING_FRAME, build_pong_frame, build_text_frame
from wsfleet.server.drain import drain as drain_connections
from wsfleet.server.fleet import Fleet
from wsfleet.server.fleet_api import FleetAPI
from wsfleet.server.ratelimit import TokenBucket
from wsfleet.server.rooms import RoomIndex
from wsfleet.server.settings import DuplicatePolicy, RateLimitPolicy, ServerSettings
from wsfleet.server.socket import Acknowledge, Closer, Socket, UpgradeRequest
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


class Server(FleetAPI):
    """A wsfleet node. Run it on its own port (``await start()``/``run()``), mount it on an
    aiohttp application (``attach()``), or call ``handle(request)`` from your own route.

    :param authenticate: optional hook called with the :class:`UpgradeRequest` **before** the
        upgrade. Return a socket id to accept and register the socket under it, ``None`` to accept
        it unregistered, or raise :class:`Refuse` to answer with an HTTP error status instead.
    """

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        fleet: FleetSettings | None = None,
        authenticate: Authenticator | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.stats = NodeStats()
        self._authenticate = authenticate
        self._events: ListenerTable[EventHandler] = ListenerTable()
        self._system: ListenerTable[SystemHandler] = ListenerTable()
        self._connections: set[Socket] = set()
        self._sockets: dict[str, Socket] = {}
        self._rooms = RoomIndex()
        hb = self.settings.heartbeat
        self._heartbeat = hb
        self._heartbeat_frame = build_text_frame(hb.encode())
        self._ping_task: asyncio.Task[None] | None = None
        self._runner: Any = None
        self._ports: list[int] = []
        self._accepting = True
        self._started = False
        self._draining = False
        self._closed_once = False
        self.fleet: Fleet | None = Fleet(self, fleet) if fleet is not None else None
        self._fleet_started = False
        self._all_gone: asyncio.Event | None = None
        self.tracing: Tracing | None = None

    # -- event registration ------------------------------------------------------------------

    @overload
    def on(
        self, event: str, handler: None = None, *, tag: Tag | None = None
    ) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H, *, tag: Tag | None = None) -> H: ...
    def on(self, event: str, handler: Any = None, *, tag: Tag | None = None) -> Any:
        """Register a handler ``(socket, payload, ack)`` for a client event; usable as a decorator.

        ``ack`` is ``None`` when the client did not ask for one. A handler may also *return* a
        value: if it is not ``None`` and the client asked for an ack that was not sent yet, the
        value is sent as the ack. Handlers may be plain functions or coroutines.
        """
        return self._register(self._events, event, handler, once=False, tag=tag)

    def once(self, event: str, handler: Any = None, *, tag: Tag | None = None) -> Any:
        """Like :meth:`on`, removed after its first call."""
        return self._register(self._events, event, handler, once=True, tag=tag)

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
            self.fleet.send_private(missing, text)
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

    # -- running -----------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 9000, *, static_dir: Path | None = None
    ) -> int:
        """Listen on ``host:port`` (``port=0`` picks a free one); returns the bound port.

        Every path accepts WebSocket upgrades, as the original server did. Plain HTTP GETs are
        answered from ``static_dir`` (``/`` is its ``index.html``) when given, else with 426.
        """
        from wsfleet.server import transport

        self._closed_once = False
        self._runner, self._ports = await transport.serve(self, host, port, static_dir=static_dir)
        return self._ports[0]

    @property
    def port(self) -> int | None:
        return self._ports[0] if self._ports else None

    def attach(self, app: Any, path: str = "/ws") -> None:
        """Mount the WebSocket endpoint at ``path`` on an existing ``aiohttp.web.Application``;
        the node starts and stops with the application."""
        from wsfleet.server import transport

        transport.attach(self, app, path)

    async def handle(self, request: Any, *, socket_id: str | None = None) -> Any:
        """Upgrade an ``aiohttp.web.Request`` from your own route (after your own checks) and run
        the connection; ``socket_id`` registers the socket at once."""
        from wsfleet.server import transport

        return await transport.handle(self, request, socket_id=socket_id)

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        static_dir: Path | None = None,
        on_listening: Callable[[int], None] | None = None,
        prepare: Awaitable[Any] | None = None,
        sidecars: Sequence[Callable[[], AbstractAsyncContextManager[Any]]] = (),
    ) -> None:
        """Blocking: listen until SIGINT/SIGTERM, then :meth:`drain` (a second signal closes at
        once) and return. ``prepare`` is awaited on the server's event loop before it listens;
        ``sidecars`` (async context managers, e.g. an internal HTTP port) run around it."""
        from wsfleet.server import transport

        transport.run(
            self,
            host,
            port,
            static_dir=static_dir,
            on_listening=on_listening,
            prepare=prepare,
            sidecars=sidecars,
        )

    def enable_tracing(self, provider: Any = None) -> None:
        """Emit OpenTelemetry spans (client events, bus publish and receive) through
        ``provider`` (an SDK ``TracerProvider``; default: the global one)."""
        from wsfleet.tracing import Tracing

        name = self.fleet.name if self.fleet is not None else None
        self.tracing = Tracing(provider, name)
        if self.fleet is not None:
            self.fleet.bus.tracing = self.tracing

    def set_authenticator(self, authenticate: Authenticator | None) -> None:
        """Install (or remove) the hook that admits or refuses upgrades (see the constructor)."""
        self._authenticate = authenticate

    async def startup(self) -> None:
        """Start the node's background work (ping loop; with a fleet, the bus and registry).
        Raises ``DuplicateNodeError`` when another live node has this node's name."""
        if self.fleet is not None and not self._fleet_started:
            await self.fleet.start()
            self._fleet_started = True
        self._accepting = True
        self._draining = False
        self._started = True
        self._closed_once = False
        if self._ping_task is None:
            self._ping_task = asyncio.create_task(self._ping_loop(), name="wsfleet-ping-loop")
        await self._emit_system_async(_LISTENING)

    async def close(self) -> None:
        """Stop accepting, close every connection with ``shutdown_close_code``, stop loops.
        Idempotent."""
        if self._closed_once:
            return
        self._closed_once = True
        self._accepting = False
        self._started = False
        for socket in list(self._connections):
            socket.close(self.settings.shutdown_close_code, "server shutting down")
        await self._wait_connections_gone(self.settings.close_timeout)
        for socket in list(self._connections):  # peers that never answered our close frame
            socket.terminate()
        if self._ping_task is not None:
            self._ping_task.cancel()
            await asyncio.gather(self._ping_task, return_exceptions=True)
            self._ping_task = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.fleet is not None and self._fleet_started:
            self._fleet_started = False
            await self.fleet.aclose()
        await self._emit_system_async(_SERVER_CLOSE)

    async def _wait_connections_gone(self, timeout: float) -> None:
        if not self._connections:
            return
        self._all_gone = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
        except TimeoutError:
            log.info("%d connections did not close in time: dropping them", len(self._connections))
        finally:
            self._all_gone = None

    async def drain(self, window: float | None = None) -> None:
        """Graceful drain, then :meth:`close`: refuse upgrades (503), close clients with 1012 in
        batches over ``window`` seconds (default ``settings.drain_timeout``) so they reconnect to
        other nodes, flush the bus, leave the fleet. Idempotent."""
        if self._draining or self._closed_once:
            return
        self._draining = True
        self._accepting = False
        await drain_connections(self, self.settings.drain_timeout if window is None else window)
        await self.close()

    @property
    def is_accepting(self) -> bool:
        return self._accepting

    @property
    def is_draining(self) -> bool:
        return self._draining

    @property
    def is_closing(self) -> bool:
        """True once :meth:`close` has started."""
        return self._closed_once

    @property
    def is_ready(self) -> bool:
        """Readiness: started, accepting upgrades, not draining and, in a fleet, with a working
        path through Redis (the bus probe made the round trip recently)."""
        if not (self._started and self._accepting) or self._draining:
            return False
        return self.fleet is None or bool(self.fleet.bus.working_paths())

    async def _ping_loop(self) -> None:
        interval = self.settings.server_ping_interval
        background_limit = self.settings.enter_background_close_time
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for socket in list(self._connections):
                since = socket.background_since
                if since is not None and now - since > background_limit:
                    self.stats.background_sockets_reaped += 1
                    socket.terminate()
                elif not socket.alive:
                    self.stats.dead_sockets_reaped += 1
                    socket.terminate()
                else:
                    socket.alive = False
                    socket.send_frame(PING_FRAME)

    # -- the transport's side ----------------------------------------------------------------

    async def _admit(self, request: UpgradeRequest) -> str | None:
        """Run the authenticate hook; raises :class:`Refuse`."""
        if not self._accepting:
            raise Refuse(503, "Server is shutting down")
        if self._authenticate is None:
            return None
        result = self._authenticate(request)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, str):
            raise TypeError(f"authenticate() must return a socket id (str) or None, got {result!r}")
        return result

    def _open(
        self,
        transport: asyncio.WriteTransport,
        closer: Closer,
        request: UpgradeRequest,
        socket_id: str | None,
    ) -> Socket:
        socket = Socket(self, transport, closer, request, next(_ids), self.settings.max_send_buffer)
        self._connections.add(socket)
        self.stats.connections_accepted += 1
        if self.settings.rate_limit_per_second is not None:
            socket.bucket = TokenBucket(
                self.settings.rate_limit_per_second, self.settings.rate_limit_burst
            )
        if socket_id is not None:
            self.set_user_socket(socket_id, socket)
        elif self.settings.auth_timeout is not None:
            socket._auth_timer = asyncio.get_running_loop().call_later(
                self.settings.auth_timeout, self._auth_expired, socket
            )
        return socket

    def _auth_expired(self, socket: Socket) -> None:
        socket._auth_timer = None
        if socket.id is None and socket.is_open:
            self.stats.auth_timeouts += 1
            socket.close(CloseCode.AUTH_TIMEOUT, "not authenticated in time")

    async def _connected(self, socket: Socket) -> None:
        await self._emit_system_async(_CONNECTION, socket)

    def _on_pong(self, socket: Socket, data: bytes) -> None:
        socket.alive = True
        if self._system.has(_PONG):
            self._emit_system(_PONG, socket, data)

    def _on_ping(self, socket: Socket, data: bytes) -> None:
        socket.alive = True
        socket.send_frame(build_pong_frame(data))

    def _on_frame(self, socket: Socket, data: str | bytes) -> bool:
        """Handle one data frame. Returns True when the caller must wait for a handler slot."""
        socket.alive = True
        stats = self.stats
        stats.frames_in += 1
        stats.bytes_in += len(data)
        bucket = socket.bucket
        if bucket is not None and not bucket.take(asyncio.get_running_loop().time()):
            stats.rate_limited += 1
            if self.settings.rate_limit_policy is RateLimitPolicy.CLOSE:
                socket.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
            return False
        try:
            frame = _decode(data, self._heartbeat)
        except FrameError as exc:
            stats.malformed_frames[exc.reason] += 1
            log.debug("dropped malformed frame from %r: %s", socket, exc)
            self._emit_message(socket, data)
            return False
        if not isinstance(frame, ClientEvent):
            stats.heartbeats += 1
            socket.send_frame(self._heartbeat_frame)
            if self._system.has(_CLIENT_PING):
                self._emit_system(_CLIENT_PING, socket)
            self._emit_message(socket, data)
            return False
        must_wait = self._dispatch(socket, frame)
        self._emit_message(socket, data)
        return must_wait

    def _emit_message(self, socket: Socket, data: str | bytes) -> None:
        if self._system.has(_MESSAGE):
            self._emit_system(_MESSAGE, socket, data)

    def _dispatch(self, socket: Socket, frame: ClientEvent) -> bool:
        tracing = self.tracing
        if tracing is None:
            return self._handle(socket, frame, None)
        span, token = tracing.start_event(frame.event, socket.id)
        try:
            return self._handle(socket, frame, _SpanEnd(span))
        finally:
            tracing.detach(token)

    def _handle(self, socket: Socket, frame: ClientEvent, span: _SpanEnd | None) -> bool:
        stats = self.stats
        if frame.bad_callback_id:
            stats.bad_callback_ids += 1
            log.debug("event %r from %r has an invalid callbackId: no ack", frame.event, socket)
        listeners = self._events.take(frame.event)
        if listeners is None:
            stats.unknown_events += 1
            log.debug("no handler for event %r from %r", frame.event, socket)
            if span is not None:
                span.finish()
            return False
        stats.events_handled += 1
        start = perf_counter()
        ack = (
            Acknowledge(socket, frame.callback_id, start) if frame.callback_id is not None else None
        )
        hist = stats.handler_seconds.for_event(frame.event)
        pending = 0
        for listener in listeners:
            try:
                result = listener.fn(socket, frame.payload, ack)
            except Exception:
                self._handler_failed(frame.event)
                log.exception("handler for event %r failed", frame.event)
                continue
            if result is None:
                continue
            if _is_awaitable(result):
                pending += 1
                self._track(socket, frame.event, result, ack, start, hist, span)
                continue
            if ack is not None:
                ack(result)
        if not pending:
            hist.observe(perf_counter() - start)
            if span is not None:
                span.finish()
        elif span is not None:
            span.pending = pending
        inflight = socket._inflight
        return inflight is not None and len(inflight) >= self.settings.max_inflight_handlers

    def _handler_failed(self, event: str) -> None:
        stats = self.stats
        stats.handler_errors += 1
        stats.handler_errors_by_event[event if event in stats.handler_seconds else OTHER_EVENT] += 1

    def _track(
        self,
        socket: Socket,
        event: str,
        awaitable: Awaitable[Any],
        ack: Acknowledge | None,
        start: float,
        hist: LatencyHistogram,
        span: _SpanEnd | None,
    ) -> None:
        task = asyncio.ensure_future(awaitable)
        if socket._inflight is None:
            socket._inflight = set()
        inflight = socket._inflight
        inflight.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            inflight.discard(t)
            if socket._slot_free is not None:
                socket._slot_free.set()
            try:
                if t.cancelled():
                    return
                hist.observe(perf_counter() - start)
                exc = t.exception()
                if exc is not None:
                    self._handler_failed(event)
                    log.error("handler for event %r failed", event, exc_info=exc)
                    return
                value = t.result()
                if value is not None and ack is not None:
                    ack(value)
            finally:
                if span is not None:
                    span.one_done()

        task.add_done_callback(done)

    async def _wait_for_slot(self, socket: Socket) -> None:
        limit = self.settings.max_inflight_handlers
        while socket._inflight is not None and len(socket._inflight) >= limit:
            if socket._slot_free is None:
                socket._slot_free = asyncio.Event()
            socket._slot_free.clear()
            await socket._slot_free.wait()

    async def _closed(self, socket: Socket, code: int | None, reason: str) -> None:
        """The connection is gone: run ``close`` handlers, then forget the socket and its rooms."""
        socket.close_code = code
        socket.close_reason = reason
        self.stats.connections_closed[code if code is not None else CloseCode.ABNORMAL] += 1
        self._connections.discard(socket)
        if not self._connections and self._all_gone is not None:
            self._all_gone.set()
        socket._detach()
        try:
            await self._emit_system_async(_CLOSE, socket, code, reason)
        finally:
            self._unregister(socket)
            for task in list(socket._inflight or ()):
                task.cancel()

    def _emit_error(self, socket: Socket, exc: BaseException) -> None:
        self._emit_system(_ERROR, socket, exc)

    def _emit_system(self, event: str, *args: Any) -> None:
        listeners = self._system.take(event)
        if listeners is None:
            return
        for listener in listeners:
            try:
                result = listener.fn(*args)
                if _is_awaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(_log_task_failure)
            except Exception:
                log.exception("system handler for %r failed", event)

    async def _emit_system_async(self, event: str, *args: Any) -> None:
        listeners = self._system.take(event)
        if listeners is None:
            return
        for listener in listeners:
            try:
                result = listener.fn(*args)
                if _is_awaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("system handler for %r failed", event)


class _SpanEnd:
    """Ends a client event's span once its last async handler finished."""

    __slots__ = ("pending", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.pending = 0

    def finish(self) -> None:
        self.span.end()

    def one_done(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.span.end()


def _is_awaitable(value: object) -> TypeGuard[Awaitable[Any]]:
    """``inspect.isawaitable``, with fast paths for the usual handler results: its final
    ``isinstance(value, Awaitable)`` ABC check costs ~0.35 µs for a plain value such as a dict."""
    if type(value) is CoroutineType:
        return True
    if hasattr(type(value), "__await__"):  # what the Awaitable ABC checks, minus its overhead
        return True
    return isinstance(value, GeneratorType) and inspect.isawaitable(value)


def _system_name(event: SystemEvent | str) -> str:
    name = event.value if isinstance(event, SystemEvent) else event
    if name not in SYSTEM_EVENTS:
        raise ValueError(
            f"unknown system event {name!r}; expected one of {sorted(SYSTEM_EVENTS)}. "
            "Client events are registered with on()."
        )
    return name


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("system handler failed", exc_info=task.exception())
