"""A node's membership in a fleet: the glue between :class:`Server` and the Redis bus.

It turns local sends into bus envelopes (original formats, so original nodes understand them),
delivers what other nodes publish to local sockets, runs cross-server events and calls, keeps
room-namespace subscriptions reference-counted, and answers cluster-wide queries.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from wsfleet import __version__
from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus
from wsfleet.bus.codec import BusDecodeError
from wsfleet.bus.directory import SocketDirectory
from wsfleet.bus.incoming import BUSY_PAYLOAD, IncomingCalls
from wsfleet.bus.node_target import NodeTarget
from wsfleet.bus.nodelist import read_node_list
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.private_ids import send_many
from wsfleet.bus.registry import Registry
from wsfleet.bus.rpc import CallMode, CrossServerResult, PendingCall, PendingCalls
from wsfleet.bus.settings import RESERVED_NAMESPACES, FleetSettings
from wsfleet.contract import ControlAction
from wsfleet.listeners import ListenerTable
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.settings import DuplicatePolicy

if TYPE_CHECKING:
    from wsfleet.server.server import Server

log = logging.getLogger("wsfleet.fleet")

CrossHandler = Callable[[dict[str, Any], Callable[[Any], None] | None], Any]
CustomHandler = Callable[[str, dict[str, Any]], Any]

QUERY_EVENT: Final = "__wsfleet.query"


class Fleet:
    def __init__(self, server: Server, settings: FleetSettings) -> None:
        self.server = server
        self.settings = settings
        self.name = settings.server_name
        self.bus = Bus(settings, self._on_bus_message)
        self.registry = Registry(self.bus, self._describe)
        self.directory = SocketDirectory(self.bus)
        self.bus.peers = self.registry.recent
        self._listed: tuple[RedisNode, ...] | None = None
        self.node_target = NodeTarget(self.bus, self.add_redis_node)
        self.calls = PendingCalls(self.name, settings.max_pending_calls)
        self.calls.is_alive = lambda name: name in self.registry.live
        self.registry.on_left.append(self.calls.node_left)
        self.incoming = IncomingCalls(settings.max_incoming_calls)
        self.listeners: ListenerTable[CrossHandler] = ListenerTable()
        self.custom_handler: CustomHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._ns_subscribed: set[str] = set()
        self._routes: dict[str, Callable[[dict[str, Any]], None]] = {
            settings.bridge_channel: self._on_bridge,
            settings.private_channel: self._on_private,
            settings.broadcast_channel: self._on_broadcast,
            self.bus.inbox: self._on_inbox,
            settings.control_channel: self._on_control,
        }
        self.bus.keep_subscribed(
            settings.bridge_channel, settings.private_channel, settings.broadcast_channel
        )
        for namespace in settings.preset_room_namespaces:
            self.bus.keep_subscribed(settings.room_channel(namespace))
        for channel in settings.custom_channels:
            self.bus.keep_subscribed(channel)
        self.listeners.add(QUERY_EVENT, self._answer_query)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, ready_timeout: float = 10.0) -> None:
        self._closing = False
        if self.settings.config_dir is not None:
            self._listed = read_node_list(self.settings.config_dir)
            for node in self._listed or ():
                if node.key not in {n.key for n in self.bus.configured}:
                    self.bus.configured.append(node)
        await self.bus.start()
        try:
            await self.bus.wait_ready(ready_timeout)
        except TimeoutError:
            log.warning("no Redis node answered within %.0fs; starting not ready", ready_timeout)
        await self.registry.start()
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="wsfleet-socket-leases"))
        if self.settings.config_dir is not None:
            self._tasks.append(
                asyncio.create_task(self._watch_config_dir(), name="wsfleet-config-dir")
            )
        log.info("node %s joined the fleet (%d Redis nodes)", self.name, len(self.bus.links))

    async def aclose(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.calls.fail_all("this node is shutting down")
        await self.incoming.aclose()
        try:
            await self.registry.aclose()
        finally:
            await self.bus.aclose()

    def _describe(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "sockets": self.server.socket_count,
            "connections": self.server.connection_count,
        }

    async def _lease_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.lease_refresh)
            try:
                lost = await self.directory.refresh(list(self.server._sockets))
                if lost:
                    log.info("%d socket ids are now held by other nodes", lost)
            except Exception:
                log.exception("socket lease refresh failed")

    # -- outgoing ----------------------------------------------------------------------------

    def publish_broadcast(self, frame: bytes) -> None:
        message = env.broadcast(frame.decode(), self.name, self.bus.meta())
        self.bus.publish(self.settings.broadcast_channel, message, "*broadcast")

    def publish_room(self, namespace: str, room_id: str, frame: bytes, exclude: list[str]) -> None:
        message = env.room(frame.decode(), namespace, room_id, self.name, exclude, self.bus.meta())
        channel = self.settings.room_channel(namespace)
        self.bus.publish(channel, message, f"room:{namespace}:{room_id}")

    def send_private(self, socket_ids: Iterable[str], frame: bytes) -> None:
        text = frame.decode()
        for socket_id in socket_ids:
            self.directory.send(socket_id, self.private_envelope(socket_id, text))

    def private_envelope(self, socket_id: str, text: str) -> bytes:
        meta = self.bus.meta(self.settings.private_channel)
        return self.bus.codec.dumps(env.private(text, [socket_id], self.name, meta))

    def send_private_ids(self, socket_ids: list[str], frame: bytes) -> None:
        """``to_socket_ids`` for ids that are not local: one envelope per owning node and one
        (d) for the ids whose owner is unknown (:mod:`wsfleet.bus.private_ids`)."""
        if not send_many(self.bus, socket_ids, frame.decode()):
            self.send_private(socket_ids, frame)

    def claim(self, socket_id: str) -> None:
        notice = self.bus.codec.dumps(
            env.control(
                ControlAction.DUPLICATE, {"socketId": socket_id}, self.name, self.bus.meta()
            )
        )
        self.directory.claim(socket_id, notice)

    def release(self, socket_id: str) -> None:
        self.directory.release(socket_id)

    def namespace_used(self, namespace: str) -> None:
        if namespace not in self._ns_subscribed:
            self._ns_subscribed.add(namespace)
            self.bus.subscribe(self.settings.room_channel(namespace))

    async def namespace_confirmed(self, namespace: str, timeout: float | None) -> None:
        """Wait until every Redis node confirmed this node's subscription to the namespace's
        channel (at once when it already did). Raises ``TimeoutError``."""
        listened = self._ns_subscribed
        if namespace not in listened and namespace not in self.settings.preset_room_namespaces:
            return  # not a namespace this node listens to (no local member)
        channel = self.settings.room_channel(namespace)
        raw = (channel.encode(),)
        if all(link.is_subscribed(raw) for link in self.bus.links.values()):
            return
        async with asyncio.timeout(timeout):
            await self.bus.wait_subscribed(channel)

    def namespace_emptied(self, namespace: str) -> None:
        if not self.settings.auto_unsubscribe or namespace not in self._ns_subscribed:
            return
        self._ns_subscribed.discard(namespace)
        self.bus.unsubscribe(self.settings.room_channel(namespace))

    @staticmethod
    def check_namespace(namespace: str) -> None:
        if namespace in RESERVED_NAMESPACES:
            raise ValueError(
                f"room namespace {namespace!r} is reserved: its channel would collide with the "
                "built-in broadcast or private-message channel"
            )

    # -- cross-server events -----------------------------------------------------------------

    def emit(
        self,
        event: str,
        message: Any,
        *,
        target_server: str | Iterable[str] | None = None,
        exclude_self: bool = False,
        mode: CallMode = CallMode.COUNT,
        expected_responses: int | None = None,
        timeout: float = 5.0,
        want_reply: bool,
        want_future: bool,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> asyncio.Future[CrossServerResult] | str | None:
        call = self._emit(
            event,
            message,
            target_server=target_server,
            exclude_self=exclude_self,
            mode=mode,
            expected_responses=expected_responses,
            timeout=timeout,
            want_reply=want_reply,
            want_future=want_future,
            callback=callback,
        )
        if call is None:
            return None
        return call.future if want_future else call.callback_id

    def _emit(
        self,
        event: str,
        message: Any,
        *,
        target_server: str | Iterable[str] | None,
        exclude_self: bool,
        mode: CallMode,
        expected_responses: int | None,
        timeout: float,
        want_reply: bool,
        want_future: bool,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> PendingCall | None:
        """:meth:`emit`, returning the pending call (None without replies)."""
        name: object = event  # callers from untyped code pass anything
        if not isinstance(name, str) or not name:
            raise TypeError(f"event must be a non-empty string, got {event!r}")
        if message is None:
            raise TypeError("message must not be None")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        targets = _targets(target_server)
        broadcast = not targets
        to_self = (broadcast and not exclude_self) or self.name in targets
        call = None
        if want_reply:
            expected_nodes: frozenset[str] | None = None
            if mode is CallMode.ALL or mode is CallMode.QUORUM:
                nodes = set(targets) if targets else set(self.registry.live)
                if not targets:
                    nodes.add(self.name)
                if exclude_self:
                    nodes.discard(self.name)
                expected_nodes = frozenset(nodes)
            if mode is CallMode.COUNT:
                expected = len(targets) if targets else max(int(expected_responses or 1), 1)
            elif mode is CallMode.QUORUM:
                expected = max(int(expected_responses or 1), 1)
            elif mode is CallMode.FIRST:
                expected = 1
            else:
                expected = len(expected_nodes or ())
            call = self.calls.open(
                mode=mode,
                expected=expected,
                expected_nodes=expected_nodes,
                timeout=timeout,
                want_future=want_future,
                callback=callback,
            )
            if expected == 0 and call.future is not None:
                self.calls.resolve_empty(call)
        callback_id = call.callback_id if call is not None else None
        bridge = self.settings.bridge_channel
        meta = self.bus.meta(bridge, r=self.bus.inbox) if callback_id else self.bus.meta(bridge)
        envelope = env.request(event, self.name, message, targets, callback_id, meta)
        encoded = self.bus.codec.dumps(envelope)  # before local listeners can change `message`
        if to_self:
            self._run_listeners(
                env.CrossRequest(
                    event, self.name, message, targets, callback_id, envelope["data"], env.Meta()
                ),
                local=True,
            )
        if not (to_self and targets == [self.name]):
            self.bus.publish_raw(self.settings.bridge_channel, encoded, self.name)
        return call

    def _run_listeners(self, request: env.CrossRequest, *, local: bool) -> None:
        listeners = self.listeners.take(request.event)
        if listeners is None:
            return
        reply = self._replier(request, local) if request.callback_id else None
        for listener in listeners:
            data = request.data if not local else dict(request.data)
            try:
                result = listener.fn(data, reply)
            except Exception:
                log.exception("cross-server listener for %r failed", request.event)
                continue
            if inspect.isawaitable(result):
                if local or self.incoming.admit():
                    self.incoming.run(result, _reply_with_result(reply, request.event))
                    continue
                _close(result)
                if request.callback_id:
                    self._reply_busy(request)
                log.warning(
                    "busy: %d cross-server listeners run already; %r from %s answered busy",
                    self.incoming.limit,
                    request.event,
                    request.sender,
                )
            elif result is not None and reply is not None:
                reply(result)

    def _replier(self, request: env.CrossRequest, local: bool) -> Callable[[Any], None]:
        callback_id = request.callback_id
        assert callback_id is not None

        def reply(payload: Any = None) -> None:
            if local:
                data = env.reply(self.name, callback_id, payload, None)["data"]
                self.calls.resolve(callback_id, self.name, data)
                return
            message = env.reply(self.name, callback_id, payload, self.bus.meta(), request.sender)
            if request.meta.reply_to is not None:
                self.bus.publish(request.meta.reply_to, message, request.sender)
            else:
                self.bus.publish(self.settings.bridge_channel, message, request.sender)

        return reply

    def _reply_busy(self, request: env.CrossRequest) -> None:
        callback_id = request.callback_id
        assert callback_id is not None
        meta = self.bus.meta(busy=1)
        message = env.reply(self.name, callback_id, dict(BUSY_PAYLOAD), meta, request.sender)
        self.bus.publish(
            request.meta.reply_to or self.settings.bridge_channel, message, request.sender
        )

    # -- incoming ----------------------------------------------------------------------------

    def _on_bus_message(self, channel: str, message: dict[str, Any]) -> None:
        route = self._routes.get(channel)
        try:
            if route is not None:
                route(message)
            elif channel.startswith(self.settings.ws_prefix):
                self._on_room(message)
            elif self.custom_handler is not None:
                result = self.custom_handler(channel, message)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result).add_done_callback(_log_failure)
        except BusDecodeError as exc:
            self.bus.stats.decode_errors += 1
            log.debug("invalid message on %r: %s", channel, exc)

    def _on_bridge(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if type(data) is dict and data.get("isCallback"):  # a reply: every call's hot path
            callback_id, sender = data.get("callbackId"), data.get("senderServer")
            if type(callback_id) is str and type(sender) is str and sender:
                if _addressed_elsewhere(data.get("targetServer"), self.name):
                    return
                wsf = message.get("wsf")
                busy = type(wsf) is dict and wsf.get("busy") == 1
                self.calls.resolve(callback_id, sender, data, busy=busy)
                return
        parsed = env.parse_bridge(message)  # validates, and raises on what is not valid
        if isinstance(parsed, env.CrossReply):
            self.calls.resolve(parsed.callback_id, parsed.sender, parsed.data)
            return
        if parsed.targets and self.name not in parsed.targets:
            return
        self._run_listeners(parsed, local=False)

    def _on_inbox(self, message: dict[str, Any]) -> None:
        if "action" in message:
            self._on_control(message)
        elif isinstance(message.get("data"), dict):
            self._on_bridge(message)
        else:
            self._on_private(message)

    def _on_private(self, message: dict[str, Any]) -> None:
        frame, socket_id = message.get("data"), message.get("socketId")
        if type(frame) is str and type(socket_id) is str and not message.get("socketIds"):
            self.server._deliver_ids((socket_id,), build_text_frame(frame.encode()))
            return
        parsed = env.parse_private(message)  # several ids, or invalid (raises)
        self.server._deliver_ids(parsed.socket_ids, build_text_frame(parsed.frame.encode()))

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        parsed = env.parse_broadcast(message)
        self.server._broadcast_frame(build_text_frame(parsed.frame.encode()))

    def _on_room(self, message: dict[str, Any]) -> None:
        parsed = env.parse_room(message)
        self.server._room_frame(
            parsed.namespace,
            parsed.room_id,
            build_text_frame(parsed.frame.encode()),
            parsed.exclude,
        )

    def _on_control(self, message: dict[str, Any]) -> None:
        control = env.parse_control(message)
        action, args = control.action, control.args
        if action == ControlAction.DUPLICATE:
            socket_id = args.get("socketId")
            socket = self.server.get_socket(socket_id) if isinstance(socket_id, str) else None
            if socket is None:
                return
            self.server.stats.duplicate_logins += 1
            self.server._unregister(socket, release=False)
            if self.server.settings.duplicate_policy is not DuplicatePolicy.REPLACE:
                socket.close(CloseCode.DUPLICATE_LOGIN, "logged in elsewhere")
        elif action == ControlAction.NODE_LEFT:
            self.registry.node_left(control.sender, args.get("boot"))
        elif action == ControlAction.REDIS_ADD:
            node = RedisNode.parse(str(args.get("address", "")))
            self.node_target.add(node, control.sender)
        elif action == ControlAction.REDIS_SET:
            addresses = args.get("addresses")
            if not isinstance(addresses, list) or not addresses:
                log.warning("ignoring redis.set from %s without addresses", control.sender)
                return
            try:
                nodes = [RedisNode.parse(str(address)) for address in addresses]
            except ValueError as exc:
                log.warning("ignoring redis.set from %s: %s", control.sender, exc)
                return
            self.node_target.set(nodes, control.sender)
        elif action == ControlAction.REDIS_REMOVE:
            key = RedisNode.parse(str(args.get("address", ""))).key
            self.node_target.remove(key, control.sender)
        else:
            log.debug("unknown control action %r from %s", action, control.sender)

    # -- hot-plug ----------------------------------------------------------------------------

    async def add_redis_node(self, node: RedisNode) -> bool:
        def fleet_listens(key: str) -> bool:
            live = self.registry.live
            return all(
                key in (info.get("redis") or ()) for name, info in live.items() if name != self.name
            )

        added = await self.bus.add_redis_node(node, ready=fleet_listens)
        await self.registry.refresh()
        return added

    async def _watch_config_dir(self) -> None:
        directory = self.settings.config_dir
        assert directory is not None
        while not self._closing:
            await asyncio.sleep(self.settings.config_poll_interval)
            try:
                listed = read_node_list(directory)
            except (OSError, ValueError) as exc:
                log.warning("cannot read the Redis node list in %s: %s", directory, exc)
                continue
            # Applied when the file changes, so nodes added by a control message stay until the
            # next edit of the list.
            if listed is None or listed == self._listed:
                continue
            self._listed = listed
            try:
                await self.apply_node_list(listed)
            except Exception:
                log.exception("applying the Redis node list of %s failed", directory)

    async def apply_node_list(self, nodes: Iterable[RedisNode]) -> None:
        """Make the bus use exactly ``nodes`` (the last list wins; :mod:`wsfleet.bus.node_target`)
        and wait until it was applied (removed nodes may still drain). An empty list is refused."""
        if self.node_target.set(nodes, "the node list"):
            await self.node_target.settled()

    def announce(self, action: str, address: str) -> None:
        message = env.control(action, {"address": address}, self.name, self.bus.meta())
        self.bus.publish(self.settings.control_channel, message, "*control")

    # -- cluster-wide queries ----------------------------------------------------------------

    def _answer_query(self, data: dict[str, Any], reply: Callable[[Any], None] | None) -> Any:
        payload = data.get("payload")
        if reply is None or not isinstance(payload, dict):
            return None
        kind = payload.get("q")
        server = self.server
        if kind == "online":
            return {"sockets": server.socket_count, "connections": server.connection_count}
        if kind == "room":
            return sorted(server.get_room_socket_ids(str(payload.get("ns")), payload.get("room")))
        if kind == "rooms":
            return server.get_room_ids(str(payload.get("ns")))
        return None

    async def query(self, question: dict[str, Any], timeout: float) -> CrossServerResult:
        future = self.emit(
            QUERY_EVENT,
            question,
            mode=CallMode.ALL,
            timeout=timeout,
            want_reply=True,
            want_future=True,
        )
        assert isinstance(future, asyncio.Future)
        return await future


def _targets(target_server: str | Iterable[str] | None) -> list[str]:
    if target_server is None:
        return []
    if isinstance(target_server, str):
        return [target_server] if target_server else []
    names: Iterable[object] = target_server
    return [t for t in names if isinstance(t, str) and t]


def _addressed_elsewhere(targets: object, name: str) -> bool:
    """A reply naming its caller in ``targetServer`` is for that node only."""
    return type(targets) is list and bool(targets) and name not in targets


def _reply_with_result(
    reply: Callable[[Any], None] | None, event: str
) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("cross-server listener for %r failed", event, exc_info=exc)
        elif reply is not None and task.result() is not None:
            reply(task.result())

    return done


def _close(awaitable: object) -> None:
    """A coroutine that will never run (closed, so Python does not warn it was not awaited)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background fleet task failed", exc_info=task.exception())
