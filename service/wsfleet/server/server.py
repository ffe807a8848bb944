"""``Server``: a wsfleet node, the original-compatible API (docs/api.md) over the node's parts.

Every method delegates: :class:`~wsfleet.server.hub.Hub` (sockets, rooms, local delivery),
:class:`~wsfleet.server.dispatch.Dispatcher` (event tables, what the transport calls),
:class:`~wsfleet.server.lifecycle.Lifecycle` (start, readiness, drain, close) and, with
``fleet=``, :class:`~wsfleet.server.fleet.Fleet` (the bus, cross-server events, Redis nodes).
docs/architecture.md draws them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar, overload

from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.rpc import CallMode, CrossServerResult
from wsfleet.bus.settings import FleetSettings
from wsfleet.listeners import Tag, register
from wsfleet.protocol.codec import encode_event
from wsfleet.protocol.params import RequestParams, parse_ws_request_params
from wsfleet.server.cross import CrossHandler
from wsfleet.server.dispatch import Authenticator, Dispatcher, EventHandler, SystemHandler
from wsfleet.server.errors import DuplicateSocketError, Refuse, UnknownSocketError, check_name
from wsfleet.server.fleet import Fleet
from wsfleet.server.fleet_inbound import CustomHandler
from wsfleet.server.hub import Hub
from wsfleet.server.lifecycle import Lifecycle, announce_listening
from wsfleet.server.ports import EventTracing
from wsfleet.server.presence import Presence
from wsfleet.server.recovery import Recovery
from wsfleet.server.room_history import RoomHistory, room_history
from wsfleet.server.settings import ServerSettings
from wsfleet.server.socket import Socket
from wsfleet.server.state import NodeState, Phase
from wsfleet.server.stats import NodeStats
from wsfleet.server.system_events import SystemEvent, system_name

__all__ = [
    "Authenticator",
    "DuplicateSocketError",
    "EventHandler",
    "Refuse",
    "Server",
    "UnknownSocketError",
]

H = TypeVar("H", bound=Callable[..., Any])
HealthListener = Callable[[bool, dict[str, Any]], None]


class Server:
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
        settings = settings or ServerSettings()
        self.stats = NodeStats()
        self.hub = Hub(settings, self.stats)
        self.fleet: Fleet | None = Fleet(self.hub, fleet) if fleet is not None else None
        if self.fleet is not None:
            self.hub.propagation = self.fleet
        state = NodeState()
        self.dispatcher = Dispatcher(settings, self.stats, self.hub, state, authenticate)
        self.lifecycle = Lifecycle(self.hub, self.dispatcher, state, self.fleet)
        self.recovery: Recovery | None = None
        if settings.recovery:
            if self.fleet is None:
                raise ValueError("recovery needs a fleet (Redis): pass fleet= settings")
            self.recovery = Recovery(self.hub, self.fleet, settings)
            self.hub.recovery = self.fleet.inbound.recovery = self.recovery
        self.presence: Presence | None = None
        if settings.presence_namespaces:
            if self.fleet is None:
                raise ValueError("presence_namespaces need a fleet (Redis): pass fleet= settings")
            self.presence = Presence(self.hub, self.fleet, settings)
            self.hub.presence = self.presence

    @property
    def settings(self) -> ServerSettings:
        """The node's settings. Assigning new ones (``dataclasses.replace``) before the node
        starts reaches every part: the Hub, the Dispatcher and the Lifecycle."""
        return self.dispatcher.settings

    @settings.setter
    def settings(self, settings: ServerSettings) -> None:
        self.hub.settings = self.dispatcher.settings = self.lifecycle.settings = settings

    # -- events ------------------------------------------------------------------------------

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
        table = self.dispatcher.events
        return register(table, event, handler, once=False, tag=tag, missing=missing)

    def once(
        self, event: str, handler: Any = None, *, tag: Tag | None = None, missing: Any = None
    ) -> Any:
        """Like :meth:`on`, removed after its first call."""
        table = self.dispatcher.events
        return register(table, event, handler, once=True, tag=tag, missing=missing)

    def off(self, event: str, handler_or_tag: EventHandler | Tag | None = None) -> int:
        """Remove client-event handlers: all of ``event``, one function, or those with a tag."""
        return self.dispatcher.events.remove(event, handler_or_tag)

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
        table = self.dispatcher.system
        return register(table, system_name(event), handler, once=False, tag=tag)

    def once_system(
        self, event: SystemEvent | str, handler: Any = None, *, tag: Tag | None = None
    ) -> Any:
        table = self.dispatcher.system
        return register(table, system_name(event), handler, once=True, tag=tag)

    def off_system(
        self, event: SystemEvent | str, handler_or_tag: SystemHandler | Tag | None = None
    ) -> int:
        return self.dispatcher.system.remove(system_name(event), handler_or_tag)

    def on_presence(self, namespace: str, handler: Any = None) -> Any:
        """Register ``handler(event: PresenceEvent)`` for the joins and leaves of the rooms of
        ``namespace`` on every node (plain function or coroutine; one event at a time, in
        arrival order); usable as a decorator. ``namespace`` must be in
        ``presence_namespaces``."""
        presence = self.presence
        if presence is None or not presence.handles(namespace):
            raise ValueError(
                f"namespace {namespace!r} has no presence events: list it in "
                "ServerSettings(presence_namespaces=...) on every node"
            )

        def add(fn: Any) -> Any:
            if not callable(fn):
                raise TypeError(f"a presence handler must be callable, got {fn!r}")
            presence.queue.handlers.setdefault(namespace, []).append(fn)
            return fn

        return add if handler is None else add(handler)

    def off_presence(self, namespace: str, handler: Any = None) -> int:
        """Remove one presence handler of ``namespace``, or all of them; returns how many."""
        if self.presence is None:
            return 0
        handlers = self.presence.queue.handlers
        current = handlers.get(namespace, [])
        kept = [] if handler is None else [h for h in current if h is not handler]
        removed = len(current) - len(kept)
        if kept:
            handlers[namespace] = kept
        else:
            handlers.pop(namespace, None)
        return removed

    # -- sockets -----------------------------------------------------------------------------

    def set_user_socket(self, socket_id: str, socket: Socket) -> None:
        """Accept ``socket`` under ``socket_id``: it can now be addressed, join rooms and receive
        broadcasts. A live socket already holding the id is handled by ``duplicate_policy``."""
        self.hub.register(socket_id, socket)

    def remove_user_socket(self, socket_id: str, socket: Socket | None = None) -> bool:
        """Forget ``socket_id`` and leave all its rooms. With ``socket``, only if the id still
        belongs to that socket. Returns False when nothing was removed."""
        return self.hub.remove(socket_id, socket)

    def get_socket(self, socket_id: str) -> Socket | None:
        return self.hub.get(socket_id)

    @property
    def socket_count(self) -> int:
        """Accepted (registered) sockets on this node."""
        return self.hub.socket_count

    @property
    def connection_count(self) -> int:
        """Open connections on this node, accepted or not."""
        return self.hub.connection_count

    def sockets(self) -> list[Socket]:
        return self.hub.sockets()

    # -- rooms -------------------------------------------------------------------------------

    def join_room(self, namespace: str, room_id: str, socket_id: str) -> None:
        self.hub.join(namespace, room_id, socket_id)

    async def join_room_confirmed(
        self, namespace: str, room_id: str, socket_id: str, *, timeout: float | None = 5.0
    ) -> None:
        """:meth:`join_room`, then wait until every Redis node confirmed this node's
        subscription to the room's channel (its namespace's; on a Redis Cluster its own): a room
        message published anywhere after this returns reaches the socket. Done at once on a
        single node or when the subscription was already confirmed. Raises ``TimeoutError``
        after ``timeout`` seconds (the socket is in the room all the same; ``None`` waits as
        long as it takes)."""
        self.hub.join(namespace, room_id, socket_id)
        if self.fleet is not None:
            await self.fleet.room_confirmed(namespace, room_id, timeout)

    def leave_room(self, namespace: str, room_id: str, socket_id: str) -> bool:
        return self.hub.leave(namespace, room_id, socket_id)

    def remove_room(self, namespace: str, room_id: str) -> None:
        """Remove a room on this node (its members stay connected)."""
        self.hub.remove_room(namespace, room_id)

    def get_socket_count_in_room(
        self, namespace: str, room_id: str | None = None, *, exact: bool = True
    ) -> int:
        return self.hub.room_socket_count(namespace, room_id, exact=exact)

    def get_room_socket_ids(
        self, namespace: str, room_id: str | None = None, *, exact: bool = True
    ) -> set[str]:
        return self.hub.room_socket_ids(namespace, room_id, exact=exact)

    def get_joined_rooms(
        self, socket_id: str, namespace_prefix: str | None = None
    ) -> dict[str, frozenset[str]]:
        return self.hub.joined_rooms(socket_id, namespace_prefix)

    def is_joined_room(self, socket_id: str, namespace: str, room_id: str | None = None) -> bool:
        return self.hub.is_joined(socket_id, namespace, room_id)

    def get_room_count(self, namespace: str, *, exact: bool = True) -> int:
        return self.hub.room_count(namespace, exact=exact)

    def get_room_ids(self, namespace: str, *, exact: bool = True) -> list[str]:
        return self.hub.room_ids(namespace, exact=exact)

    # -- sending -----------------------------------------------------------------------------

    def broadcast(self, event: str, payload: Any = None, *, local_only: bool = False) -> int:
        """Push an event to every accepted socket of the fleet (encoded once); returns how many
        local sockets got it. With ``local_only``, this node's sockets only."""
        check_name("event", event)
        return self.hub.broadcast(encode_event(event, payload), local_only=local_only)

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
        check_name("namespace", namespace)
        check_name("room_id", room_id)
        check_name("event", event)
        text = encode_event(event, payload)
        sent = self.hub.to_room(namespace, room_id, text, list(exclude), local_only=local_only)
        if destroy:
            self.hub.remove_room(namespace, room_id)
        return sent

    def to_socket_id(self, socket_id: str, event: str, payload: Any = None) -> bool:
        """Push an event to one socket, on whatever node it is connected. True when it was
        written locally or handed to the bus; False when the id is unknown (single node)."""
        check_name("event", event)
        return self.hub.to_id(socket_id, encode_event(event, payload))

    async def to_socket_id_confirmed(self, socket_id: str, event: str, payload: Any = None) -> bool:
        """:meth:`to_socket_id` for a socket on another node, waiting for Redis' answer: False
        when the node holding it crashed or left the fleet (nobody listens on its inbox)."""
        check_name("event", event)
        text = encode_event(event, payload)
        if self.fleet is None or self.hub.get(socket_id) is not None:
            return self.hub.to_id(socket_id, text)
        return await self.fleet.send_private_confirmed(socket_id, text)

    def to_socket_ids(self, socket_ids: Iterable[str], event: str, payload: Any = None) -> int:
        """Push one event (encoded once) to several sockets, on whatever nodes they are; returns
        how many were written locally."""
        check_name("event", event)
        return self.hub.to_ids(socket_ids, encode_event(event, payload))

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
        return await self.lifecycle.start(host, port, static_dir=static_dir)

    @property
    def port(self) -> int | None:
        return self.lifecycle.port

    def attach(self, app: Any, path: str = "/ws") -> None:
        """Mount the WebSocket endpoint at ``path`` on an existing ``aiohttp.web.Application``;
        the node starts and stops with the application."""
        self.lifecycle.attach(app, path)

    async def handle(self, request: Any, *, socket_id: str | None = None) -> Any:
        """Upgrade an ``aiohttp.web.Request`` from your own route (after your own checks) and run
        the connection; ``socket_id`` registers the socket at once."""
        return await self.lifecycle.handle(request, socket_id)

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
        ``sidecars`` (async context managers, e.g. an internal HTTP port) run around it.
        Without ``on_listening`` it prints the address it listens on."""
        if on_listening is None:
            on_listening = functools.partial(announce_listening, host)
        self.lifecycle.run(
            host,
            port,
            static_dir=static_dir,
            on_listening=on_listening,
            prepare=prepare,
            sidecars=sidecars,
        )

    async def startup(self) -> None:
        """Start the node's background work (ping loop; with a fleet, the bus and registry).
        Raises ``DuplicateNodeError`` when another live node has this node's name."""
        await self.lifecycle.startup()

    async def close(self) -> None:
        """Stop accepting, close every connection with ``shutdown_close_code``, stop loops.
        Idempotent."""
        await self.lifecycle.close()

    async def drain(self, window: float | None = None) -> None:
        """Graceful drain, then :meth:`close`: refuse upgrades (503), close clients with 1012 in
        batches over ``window`` seconds (default ``settings.drain_timeout``) so they reconnect to
        other nodes, flush the bus, leave the fleet. Idempotent."""
        await self.lifecycle.drain(window)

    @property
    def is_accepting(self) -> bool:
        return self.lifecycle.state.accepting

    @property
    def is_draining(self) -> bool:
        """True once a drain began (also while the close that ends it runs)."""
        return self.lifecycle.state.draining

    @property
    def is_closing(self) -> bool:
        """True once :meth:`close` has started."""
        return self.lifecycle.phase is Phase.CLOSED

    @property
    def is_ready(self) -> bool:
        """Readiness (the same rule as ``/readyz``): started and listening, not draining and,
        in a fleet, with a working path through Redis (the bus probe returned recently)."""
        return not self.lifecycle.readiness()

    def enable_tracing(self, provider: Any = None) -> None:
        """Emit OpenTelemetry spans (client events, bus publish and receive) through
        ``provider`` (an SDK ``TracerProvider``; default: the global one)."""
        # OpenTelemetry is loaded only by nodes that trace.
        from wsfleet.tracing import Tracing

        tracing = Tracing(provider, self.fleet.name if self.fleet is not None else None)
        self.dispatcher.tracing = tracing
        if self.fleet is not None:
            self.fleet.bus.tracing = tracing

    @property
    def tracing(self) -> EventTracing | None:
        """The node's tracing (see :meth:`enable_tracing`); None when it does not trace."""
        return self.dispatcher.tracing

    def set_authenticator(self, authenticate: Authenticator | None) -> None:
        """Install (or remove) the hook that admits or refuses upgrades (see the constructor)."""
        self.dispatcher.authenticate = authenticate

    # -- the fleet: cross-server events and calls ---------------------------------------------

    def _require_fleet(self) -> Fleet:
        if self.fleet is None:
            raise RuntimeError(
                "this needs a fleet: create the server with "
                "Server(fleet=FleetSettings(redis=[RedisNode.parse('127.0.0.1:6379')], ...))"
            )
        return self.fleet

    @property
    def server_name(self) -> str | None:
        """This node's unique name in the fleet (``getServerName``); None without a fleet."""
        return self.fleet.name if self.fleet is not None else None

    @overload
    def on_cross_server_event(
        self, event: str, handler: None = None, *, tag: Tag | None = None
    ) -> Callable[[H], H]: ...
    @overload
    def on_cross_server_event(self, event: str, handler: H, *, tag: Tag | None = None) -> H: ...
    def on_cross_server_event(
        self, event: str, handler: Any = None, *, tag: Tag | None = None
    ) -> Any:
        """Handle a cross-server event: ``handler(data, reply)``. ``data`` is the whole envelope
        (``data["payload"]`` is the message, ``data["senderServer"]`` the caller); ``reply`` is
        ``None`` unless the caller wants replies. Returning a value replies with it."""
        return self._add_cross(event, handler, once=False, tag=tag)

    def once_cross_server_event(
        self, event: str, handler: Any = None, *, tag: Tag | None = None
    ) -> Any:
        return self._add_cross(event, handler, once=True, tag=tag)

    def off_cross_server_event(
        self, event: str, handler_or_tag: CrossHandler | Tag | None = None
    ) -> int:
        return self._require_fleet().cross.listeners.remove(event, handler_or_tag)

    def _add_cross(self, event: str, handler: Any, *, once: bool, tag: Tag | None) -> Any:
        table = self._require_fleet().cross.listeners
        if event.startswith("__wsfleet."):
            raise ValueError(f"event names starting with '__wsfleet.' are reserved: {event!r}")
        return register(table, event, handler, once=once, tag=tag)

    def emit_cross_server(
        self,
        event: str,
        message: Any,
        callback: Callable[[dict[str, Any]], None] | None = None,
        *,
        target_server: str | Iterable[str] | None = None,
        exclude_self: bool = False,
        expected_responses: int = 1,
        timeout: float = 5.0,
    ) -> str | None:
        """The original ``emitCrossServer``: ``callback`` gets ``{success, data,
        remainingResponses}`` per reply, or ``{success: False, error, callbackId,
        unrespondedCount}`` on timeout. Returns the callback id (or None without callback)."""
        call = self._require_fleet().cross.emit(
            event,
            message,
            target_server=target_server,
            exclude_self=exclude_self,
            mode=CallMode.COUNT,
            expected_responses=expected_responses,
            timeout=timeout,
            want_reply=callback is not None,
            want_future=False,
            callback=callback,
        )
        return call.callback_id if call is not None else None

    async def emit_cross_server_async(
        self,
        event: str,
        message: Any,
        *,
        target_server: str | Iterable[str] | None = None,
        exclude_self: bool = False,
        mode: CallMode | str = CallMode.COUNT,
        expected_responses: int | None = None,
        timeout: float = 5.0,
    ) -> CrossServerResult:
        """Call other nodes and wait for their replies (``mode``: ``count``, ``all``, ``first``
        or ``quorum``; see docs/api.md). Cancelling the awaiting task cancels the call."""
        return await self._require_fleet().cross.call(
            event,
            message,
            target_server=target_server,
            exclude_self=exclude_self,
            mode=mode,
            expected_responses=expected_responses,
            timeout=timeout,
        )

    async def emit_cross_server_with_promise(
        self,
        event: str,
        message: Any,
        *,
        target_server: str | Iterable[str] | None = None,
        exclude_self: bool = False,
        expected_responses: int = 1,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The original ``emitCrossServerWithPromise`` result shape, for ported code."""
        try:
            result = await self.emit_cross_server_async(
                event,
                message,
                target_server=target_server,
                exclude_self=exclude_self,
                expected_responses=expected_responses,
                timeout=timeout,
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            return {"success": False, "message": str(exc)}
        return result.to_original()

    def delete_cross_server_callback(self, callback_id: str) -> bool:
        """Forget a pending call and its timer (safe, unlike the original's W1)."""
        return self._require_fleet().cross.calls.cancel(callback_id)

    # -- the fleet: custom channels and Redis nodes -----------------------------------------------

    def publish_redis_message(self, channel: str, message: dict[str, Any]) -> bool:
        """Publish a map on any channel (``publishRedisMessage``). False if it is not a map."""
        name: object = channel
        if not isinstance(name, str) or not name:
            raise TypeError(f"channel must be a non-empty string, got {channel!r}")
        value: object = message
        if not isinstance(value, dict):
            return False
        self._require_fleet().bus.publish(channel, message, channel)
        return True

    def set_custom_channel_handler(self, handler: CustomHandler) -> None:
        if not callable(handler):
            raise TypeError("the custom channel handler must be callable")
        self._require_fleet().inbound.custom_handler = handler

    def remove_custom_channel_handler(self) -> None:
        self._require_fleet().inbound.custom_handler = None

    def manual_subscribe(self, channel: str) -> None:
        self._require_fleet().bus.subscribe(channel)

    def manual_unsubscribe(self, channel: str) -> None:
        self._require_fleet().bus.unsubscribe(channel)

    async def add_redis_instance(
        self, address: str | RedisNode, *, everywhere: bool = False
    ) -> bool:
        """Hot-add a Redis node on this node; with ``everywhere``, tell every node to do it too."""
        return await self._require_fleet().control.add_instance(address, everywhere=everywhere)

    async def remove_redis_instance(
        self, address: str | RedisNode, *, everywhere: bool = False
    ) -> bool:
        """Hot-remove a Redis node (drained first); with ``everywhere``, on every node."""
        return await self._require_fleet().control.remove_instance(address, everywhere=everywhere)

    def get_healthy_redis_instances_count(self, role: str = "publisher") -> int:
        return self._require_fleet().control.healthy_count(role)

    def get_redis_instances_count(self) -> int:
        return len(self._require_fleet().bus.links)

    def on_redis_health_change(self, listener: HealthListener) -> HealthListener:
        """``listener(is_healthy, info)`` with the original's info fields, on every change."""
        self._require_fleet().bus.health_listeners.append(listener)
        return listener

    # -- the fleet: cluster-wide queries ------------------------------------------------------

    def live_nodes(self) -> dict[str, dict[str, Any]]:
        """Live nodes of the fleet (from the registry, refreshed every ``lease_refresh``)."""
        return dict(self._require_fleet().registry.live)

    async def cluster_online_count(self, timeout: float = 2.0) -> int:
        """Accepted sockets on every live node."""
        return await self._require_fleet().cross.online_count(timeout)

    async def cluster_room_socket_ids(
        self, namespace: str, room_id: str | None = None, timeout: float = 2.0
    ) -> set[str]:
        return await self._require_fleet().cross.room_socket_ids(namespace, room_id, timeout)

    async def cluster_room_ids(self, namespace: str, timeout: float = 2.0) -> set[str]:
        return await self._require_fleet().cross.room_ids(namespace, timeout)

    async def room_history(
        self, namespace: str, room_id: str, *, limit: int = 100, since: str | None = None
    ) -> RoomHistory:
        """The room's last ``limit`` messages or, with ``since`` (a ``wsfp`` position), up to
        ``limit`` messages after it, oldest first. Needs ``recovery``; raises
        :class:`HistoryLostError` when ``since`` is no longer in the history."""
        if self.recovery is None:
            raise RuntimeError("room history needs ServerSettings(recovery=True) and a fleet")
        return await room_history(
            self.recovery.history,
            namespace,
            room_id,
            limit=limit,
            since=since,
            timeout=self.settings.recovery_timeout,
        )

    async def locate_socket(self, socket_id: str) -> str | None:
        """The name of the node where ``socket_id`` is connected, or None."""
        return await self._require_fleet().directory.locate(socket_id)
