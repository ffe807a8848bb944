"""The fleet half of :class:`Server`'s public API: cross-server events and calls, custom
channels, Redis administration and cluster-wide queries. All of it needs ``fleet=FleetSettings``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.rpc import CallMode, CrossServerResult
from wsfleet.contract import ControlAction
from wsfleet.listeners import Tag, register
from wsfleet.protocol.codec import encode_event
from wsfleet.server.fleet import CrossHandler, CustomHandler, Fleet

H = TypeVar("H", bound=Callable[..., Any])
_MODES: dict[str, CallMode] = {mode.value: mode for mode in CallMode}
"""Modes by value (a ``CallMode`` is a ``str`` and finds itself): cheaper than ``CallMode()``."""
HealthListener = Callable[[bool, dict[str, Any]], None]


class FleetAPI:
    fleet: Fleet | None

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

    # -- cross-server events -----------------------------------------------------------------

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
        return self._require_fleet().listeners.remove(event, handler_or_tag)

    def _add_cross(self, event: str, handler: Any, *, once: bool, tag: Tag | None) -> Any:
        table = self._require_fleet().listeners
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
        result = self._require_fleet().emit(
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
        return result if isinstance(result, str) else None

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
        """Call other nodes and wait for their replies.

        ``mode``: ``count`` (the original: ``expected_responses`` replies, default 1, or one per
        target), ``all`` (every live node from the registry, or every target), ``first``, or
        ``quorum`` (``expected_responses`` distinct nodes). The result has ``responses`` by
        server and, for ``all``/``quorum``, a per-node ``outcomes`` (answered, timed-out, left).
        Cancelling the awaiting task cancels the call cleanly.
        """
        fleet = self._require_fleet()
        call = fleet._emit(
            event,
            message,
            target_server=target_server,
            exclude_self=exclude_self,
            mode=_MODES.get(mode) or CallMode(mode),
            expected_responses=expected_responses,
            timeout=timeout,
            want_reply=True,
            want_future=True,
        )
        assert call is not None and call.future is not None
        try:
            return await call.future
        except asyncio.CancelledError:
            fleet.calls.cancel(call.callback_id)  # no-op when it ended meanwhile
            raise

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
        return self._require_fleet().calls.cancel(callback_id)

    # -- custom channels ---------------------------------------------------------------------

    def publish_redis_message(self, channel: str, message: dict[str, Any]) -> bool:
        """Publish a map on any channel (``publishRedisMessage``). False if it is not a map."""
        name: object = channel
        if not isinstance(name, str) or not name:
            raise TypeError(f"channel must be a non-empty string, got {channel!r}")
        value: object = message
        if not isinstance(value, dict):
            return False
        fleet = self._require_fleet()
        fleet.bus.publish(channel, message, channel)
        return True

    def set_custom_channel_handler(self, handler: CustomHandler) -> None:
        if not callable(handler):
            raise TypeError("the custom channel handler must be callable")
        self._require_fleet().custom_handler = handler

    def remove_custom_channel_handler(self) -> None:
        self._require_fleet().custom_handler = None

    def manual_subscribe(self, channel: str) -> None:
        self._require_fleet().bus.subscribe(channel)

    def manual_unsubscribe(self, channel: str) -> None:
        self._require_fleet().bus.unsubscribe(channel)

    # -- Redis nodes -------------------------------------------------------------------------

    async def add_redis_instance(
        self, address: str | RedisNode, *, everywhere: bool = False
    ) -> bool:
        """Hot-add a Redis node on this node; with ``everywhere``, tell every node to do it too."""
        fleet = self._require_fleet()
        node = address if isinstance(address, RedisNode) else RedisNode.parse(address)
        if everywhere:
            fleet.announce(
                ControlAction.REDIS_ADD, str(node) if not node.password else _plain(node)
            )
        return await fleet.add_redis_node(node)

    async def remove_redis_instance(
        self, address: str | RedisNode, *, everywhere: bool = False
    ) -> bool:
        """Hot-remove a Redis node (drained first); with ``everywhere``, on every node."""
        fleet = self._require_fleet()
        node = address if isinstance(address, RedisNode) else RedisNode.parse(address)
        if everywhere:
            fleet.announce(ControlAction.REDIS_REMOVE, _plain(node))
        return await fleet.bus.remove_redis_node(node.key)

    def get_healthy_redis_instances_count(self, role: str = "publisher") -> int:
        if role not in ("publisher", "subscriber"):
            raise TypeError("role must be 'publisher' or 'subscriber'")
        links = self._require_fleet().bus.links.values()
        if role == "publisher":
            return sum(1 for link in links if link.publisher_healthy)
        return sum(1 for link in links if link.subscriber_healthy)

    def get_redis_instances_count(self) -> int:
        return len(self._require_fleet().bus.links)

    def on_redis_health_change(self, listener: HealthListener) -> HealthListener:
        """``listener(is_healthy, info)`` with the original's info fields, on every change."""
        self._require_fleet().bus.health_listeners.append(listener)
        return listener

    # -- cluster-wide queries ----------------------------------------------------------------

    def live_nodes(self) -> dict[str, dict[str, Any]]:
        """Live nodes of the fleet (from the registry, refreshed every ``lease_refresh``)."""
        return dict(self._require_fleet().registry.live)

    async def cluster_online_count(self, timeout: float = 2.0) -> int:
        """Accepted sockets on every live node."""
        result = await self._require_fleet().query({"q": "online"}, timeout)
        return sum(
            int(v.get("sockets", 0)) for v in result.payloads.values() if isinstance(v, dict)
        )

    async def cluster_room_socket_ids(
        self, namespace: str, room_id: str | None = None, timeout: float = 2.0
    ) -> set[str]:
        result = await self._require_fleet().query(
            {"q": "room", "ns": namespace, "room": room_id}, timeout
        )
        members: set[str] = set()
        for value in result.payloads.values():
            if isinstance(value, list):
                members.update(str(v) for v in value)
        return members

    async def cluster_room_ids(self, namespace: str, timeout: float = 2.0) -> set[str]:
        result = await self._require_fleet().query({"q": "rooms", "ns": namespace}, timeout)
        rooms: set[str] = set()
        for value in result.payloads.values():
            if isinstance(value, list):
                rooms.update(str(v) for v in value)
        return rooms

    async def to_socket_id_confirmed(self, socket_id: str, event: str, payload: Any = None) -> bool:
        """:meth:`to_socket_id` for a socket on another node, waiting for Redis' answer: False
        when the node holding it crashed or left the fleet (nobody listens on its inbox)."""
        local: Any = self  # the Server this mixin is part of
        if socket_id in local._sockets:
            return bool(local.to_socket_id(socket_id, event, payload))
        fleet = self._require_fleet()
        name: object = event  # callers from untyped code pass anything
        if not isinstance(name, str) or not name:
            raise TypeError(f"event must be a non-empty string, got {event!r}")
        text = encode_event(event, payload).decode()
        return await fleet.directory.send_confirmed(
            socket_id, fleet.private_envelope(socket_id, text)
        )

    async def locate_socket(self, socket_id: str) -> str | None:
        """The name of the node where ``socket_id`` is connected, or None."""
        return await self._require_fleet().directory.locate(socket_id)


def _plain(node: RedisNode) -> str:
    scheme = "rediss" if node.tls else "redis"
    auth = ""
    if node.password:
        auth = f"{node.username or ''}:{node.password}@"
    return f"{scheme}://{auth}{node.host}:{node.port}/{node.db}"
