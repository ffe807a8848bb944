"""The declared interfaces between the parts of a node.

- :class:`NodePort`: what the transport (the aiohttp adapter) calls on the node, per connection.
- :class:`Propagation`: what the :class:`~wsfleet.server.hub.Hub` tells the rest of the fleet
  (claims of socket ids, room namespaces in use, sends that must reach other nodes).
  :class:`LocalOnly` is the single-node implementation: nothing leaves the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from wsfleet.server.settings import ServerSettings
from wsfleet.server.socket import Closer, Socket, UpgradeRequest
from wsfleet.server.stats import NodeStats


class NodePort(Protocol):
    """The node as the transport sees it. Frames of one connection arrive in order; ``frame``
    returns True when the caller must ``wait_for_slot`` before handing over the next one."""

    settings: ServerSettings
    stats: NodeStats

    async def admit(self, request: UpgradeRequest) -> str | None:
        """Run the ``authenticate`` hook; raises :class:`~wsfleet.server.errors.Refuse`."""
        ...

    def open(
        self,
        transport: asyncio.WriteTransport,
        closer: Closer,
        request: UpgradeRequest,
        socket_id: str | None,
    ) -> Socket: ...

    async def connected(self, socket: Socket) -> None: ...

    def frame(self, socket: Socket, data: str | bytes) -> bool: ...

    async def wait_for_slot(self, socket: Socket) -> None: ...

    def pong(self, socket: Socket, data: bytes) -> None: ...

    def ping(self, socket: Socket, data: bytes) -> None: ...

    def failed(self, socket: Socket, exc: BaseException) -> None: ...

    async def closed(self, socket: Socket, code: int | None, reason: str) -> None: ...


class RecoveryHooks(Protocol):
    """What the Hub, the dispatcher and the bus inbound tell connection state recovery
    (:class:`~wsfleet.server.recovery.Recovery`), and the sends they leave to it."""

    async def admit(self, request: UpgradeRequest, socket_id: str | None) -> str | None: ...
    async def connected(self, socket: Socket) -> None: ...
    def closed(self, socket: Socket) -> None: ...
    def registered(self, socket: Socket) -> None: ...
    def unregistered(self, socket: Socket) -> None: ...
    def joined(self, namespace: str, room_id: str, socket_id: str) -> None: ...
    def left(self, namespace: str, room_id: str, socket_id: str) -> None: ...
    def broadcast(self, text: bytes, local_only: bool) -> int: ...
    def to_room(
        self, namespace: str, room_id: str, text: bytes, exclude: list[str], local_only: bool
    ) -> int: ...
    def to_id(self, socket_id: str, text: bytes) -> bool: ...
    def to_ids(self, socket_ids: Iterable[str], text: bytes) -> int: ...
    def on_room(self, message: dict[str, Any]) -> None: ...
    def on_broadcast(self, message: dict[str, Any]) -> None: ...
    def on_private(self, message: dict[str, Any]) -> None: ...


class PresenceHooks(Protocol):
    """What the Hub tells cluster-wide presence (:class:`~wsfleet.server.presence.Presence`)
    about the namespaces it ``handles``."""

    def handles(self, namespace: str) -> bool: ...
    def joined(self, namespace: str, room_id: str, socket_id: str) -> None: ...
    def left(self, namespace: str, room_id: str, socket_id: str) -> None: ...


class Propagation(Protocol):
    """How local changes and sends reach the other nodes of a fleet."""

    def claim(self, socket_id: str, since: int) -> None:
        """``socket_id`` was registered here, for a login asked for at ``since`` (ms): the
        newest login wins on every node."""
        ...

    def release(self, socket_id: str) -> None: ...

    def namespace_used(self, namespace: str) -> None:
        """The first local room of ``namespace`` appeared: listen to its channel."""
        ...

    def namespace_emptied(self, namespace: str) -> None: ...

    @property
    def per_room(self) -> bool:
        """Rooms have channels of their own (Redis Cluster): :meth:`room_used` and
        :meth:`room_emptied` are called."""
        ...

    def room_used(self, namespace: str, room_id: str) -> None:
        """The first local member of a room joined: listen to its channel."""
        ...

    def room_emptied(self, namespace: str, room_id: str) -> None: ...

    def publish_broadcast(self, text: bytes) -> None: ...

    def publish_room(
        self, namespace: str, room_id: str, text: bytes, exclude: list[str]
    ) -> None: ...

    def send_private(self, socket_ids: Iterable[str], text: bytes) -> bool:
        """Route to sockets on other nodes, one envelope per id; False when there is no fleet
        to route through."""
        ...

    def send_private_ids(self, socket_ids: list[str], text: bytes) -> None:
        """``to_socket_ids`` for ids that are not local: one envelope per owning node."""
        ...


class LocalOnly:
    """:class:`Propagation` of a node without a fleet."""

    def claim(self, socket_id: str, since: int) -> None:
        pass

    def release(self, socket_id: str) -> None:
        pass

    def namespace_used(self, namespace: str) -> None:
        pass

    def namespace_emptied(self, namespace: str) -> None:
        pass

    per_room = False

    def room_used(self, namespace: str, room_id: str) -> None:
        pass

    def room_emptied(self, namespace: str, room_id: str) -> None:
        pass

    def publish_broadcast(self, text: bytes) -> None:
        pass

    def publish_room(self, namespace: str, room_id: str, text: bytes, exclude: list[str]) -> None:
        pass

    def send_private(self, socket_ids: Iterable[str], text: bytes) -> bool:
        return False

    def send_private_ids(self, socket_ids: list[str], text: bytes) -> None:
        pass


class FleetMembership(Protocol):
    """What the node's :class:`~wsfleet.server.lifecycle.Lifecycle` needs of its fleet."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def has_working_path(self) -> bool:
        """A message published now would reach the other nodes (the bus probe says so)."""
        ...

    async def flush(self, timeout: float) -> bool:
        """Wait until queued publishes went out; False when some were left at the deadline."""
        ...

    def link_problems(self) -> list[str]:
        """The last known cause of each Redis node's failure (refused AUTH, untrusted
        certificate, unresolvable name, …), for readiness reasons."""
        ...


class EventTracing(Protocol):
    """Spans of client events (``wsfleet.tracing.Tracing``, loaded only by nodes that trace)."""

    def start_event(self, event: str, socket_id: str | None) -> tuple[Any, object]: ...

    def detach(self, token: object) -> None: ...
