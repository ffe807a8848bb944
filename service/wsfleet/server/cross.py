"""Cross-server events and calls: sending requests, running listeners, collecting replies, and
the cluster-wide queries built on them. Envelopes keep the original's formats."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from wsfleet.bus import envelopes as env
from wsfleet.bus.bus import Bus
from wsfleet.bus.incoming import BUSY_PAYLOAD, IncomingCalls, discard
from wsfleet.bus.registry import Registry
from wsfleet.bus.rpc import CallMode, CrossServerResult, PendingCall, PendingCalls
from wsfleet.bus.settings import FleetSettings
from wsfleet.listeners import ListenerTable
from wsfleet.server.hub import Hub
from wsfleet.tasks import TaskOwner

log = logging.getLogger("wsfleet.fleet")

CrossHandler = Callable[[dict[str, Any], Callable[[Any], None] | None], Any]

QUERY_EVENT: Final = "__wsfleet.query"
_MODES: dict[str, CallMode] = {mode.value: mode for mode in CallMode}
"""Modes by value (a ``CallMode`` is a ``str`` and finds itself): cheaper than ``CallMode()``."""


class CrossServer:
    """Cross-server events of one node. Async listeners run as tasks of ``tasks``."""

    def __init__(
        self,
        bus: Bus,
        registry: Registry,
        hub: Hub,
        settings: FleetSettings,
        tasks: TaskOwner,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.hub = hub
        self.settings = settings
        self.name = settings.server_name
        self.tasks = tasks
        self.calls = PendingCalls(self.name, settings.max_pending_calls)
        self.calls.is_alive = lambda name: name in self.registry.live
        registry.on_left.append(self.calls.node_left)
        self.incoming = IncomingCalls(settings.max_incoming_calls)
        self.listeners: ListenerTable[CrossHandler] = ListenerTable()
        self.listeners.add(QUERY_EVENT, self._answer_query)

    def emit(
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
        """Send a cross-server event; returns the pending call (None without replies)."""
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
            self.run_listeners(
                env.CrossRequest(
                    event, self.name, message, targets, callback_id, envelope["data"], env.Meta()
                ),
                local=True,
            )
        if not (to_self and targets == [self.name]):
            self.bus.publish_raw(self.settings.bridge_channel, encoded, self.name)
        return call

    async def call(
        self,
        event: str,
        message: Any,
        *,
        target_server: str | Iterable[str] | None,
        exclude_self: bool,
        mode: CallMode | str,
        expected_responses: int | None,
        timeout: float,
    ) -> CrossServerResult:
        """Send and wait for the replies; cancelling the caller cancels the call."""
        call = self.emit(
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
        if call is None or call.future is None:
            raise RuntimeError("a call that wants a reply always has a future")
        try:
            return await call.future
        except asyncio.CancelledError:
            self.calls.cancel(call.callback_id)  # no-op when it ended meanwhile
            raise

    # -- incoming ----------------------------------------------------------------------------

    def on_bridge(self, message: dict[str, Any]) -> None:
        """A message on the bridge channel (or the inbox): a reply or a request."""
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
        self.run_listeners(parsed, local=False)

    def run_listeners(self, request: env.CrossRequest, *, local: bool) -> None:
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
                if not local and not self.incoming.admit():
                    discard(result)
                    self._reply_busy(request)
                    continue
                task = self.tasks.spawn(result, f"wsfleet-cross-{request.event}")
                if task is not None:
                    self.incoming.started(task)
                    task.add_done_callback(_reply_with_result(reply, request.event))
            elif result is not None and reply is not None:
                reply(result)

    def _reply_busy(self, request: env.CrossRequest) -> None:
        log.warning(
            "busy: %d cross-server listeners run already; %r from %s answered busy",
            self.incoming.limit,
            request.event,
            request.sender,
        )
        callback_id = request.callback_id
        if callback_id is None:
            return
        meta = self.bus.meta(busy=1)
        message = env.reply(self.name, callback_id, dict(BUSY_PAYLOAD), meta, request.sender)
        channel = request.meta.reply_to or self.settings.bridge_channel
        self.bus.publish(channel, message, request.sender)

    def _replier(self, request: env.CrossRequest, local: bool) -> Callable[[Any], None]:
        callback_id = request.callback_id
        if callback_id is None:
            raise ValueError("a request without callbackId wants no reply")

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

    # -- cluster-wide queries ----------------------------------------------------------------

    def _answer_query(self, data: dict[str, Any], reply: Callable[[Any], None] | None) -> Any:
        payload = data.get("payload")
        if reply is None or not isinstance(payload, dict):
            return None
        kind = payload.get("q")
        hub = self.hub
        if kind == "online":
            return {"sockets": hub.socket_count, "connections": hub.connection_count}
        if kind == "room":
            room = payload.get("room")
            ids = hub.room_socket_ids(
                str(payload.get("ns")), room if isinstance(room, str) else None, exact=True
            )
            return sorted(ids)
        if kind == "rooms":
            return hub.room_ids(str(payload.get("ns")))
        return None

    async def query(self, question: dict[str, Any], timeout: float) -> CrossServerResult:
        return await self.call(
            QUERY_EVENT,
            question,
            target_server=None,
            exclude_self=False,
            mode=CallMode.ALL,
            expected_responses=None,
            timeout=timeout,
        )

    async def online_count(self, timeout: float) -> int:
        result = await self.query({"q": "online"}, timeout)
        return sum(
            int(v.get("sockets", 0)) for v in result.payloads.values() if isinstance(v, dict)
        )

    async def room_socket_ids(
        self, namespace: str, room_id: str | None, timeout: float
    ) -> set[str]:
        result = await self.query({"q": "room", "ns": namespace, "room": room_id}, timeout)
        return _union(result.payloads.values())

    async def room_ids(self, namespace: str, timeout: float) -> set[str]:
        result = await self.query({"q": "rooms", "ns": namespace}, timeout)
        return _union(result.payloads.values())


def _union(values: Iterable[Any]) -> set[str]:
    members: set[str] = set()
    for value in values:
        if isinstance(value, list):
            members.update(str(v) for v in value)
    return members


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
        if task.cancelled() or task.exception() is not None:
            return  # the task owner logs failures
        if reply is not None and task.result() is not None:
            reply(task.result())

    return done
