"""The Hub: a node's local sockets, rooms and local delivery.

It owns the connection set, the socket registry (id → socket) and the room index; nothing else
touches them. Sends that must also reach other nodes are handed to its
:class:`~wsfleet.server.ports.Propagation` (``LocalOnly`` on a single node, the fleet otherwise),
and so are registrations (the newest login wins fleet-wide) and room namespaces coming into and
out of use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from wsfleet.bus.settings import RESERVED_NAMESPACES
from wsfleet.protocol.codes import CloseCode
from wsfleet.protocol.wsframe import build_text_frame
from wsfleet.server.errors import DuplicateSocketError, UnknownSocketError, check_name
from wsfleet.server.ports import LocalOnly, PresenceHooks, Propagation, RecoveryHooks
from wsfleet.server.rooms import RoomIndex
from wsfleet.server.settings import DuplicatePolicy, ServerSettings
from wsfleet.server.socket import Socket
from wsfleet.server.stats import NodeStats

log = logging.getLogger("wsfleet.server")


def check_namespace(namespace: str) -> None:
    if namespace in RESERVED_NAMESPACES:
        raise ValueError(
            f"room namespace {namespace!r} is reserved: its channel would collide with the "
            "built-in broadcast or private-message channel"
        )


class Hub:
    """Local sockets, rooms and delivery of one node."""

    def __init__(
        self, settings: ServerSettings, stats: NodeStats, propagation: Propagation | None = None
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.propagation: Propagation = propagation or LocalOnly()
        #: Connection state recovery, when on: it stamps and records this node's sends.
        self.recovery: RecoveryHooks | None = None
        #: Cluster-wide presence, when some namespaces opted in.
        self.presence: PresenceHooks | None = None
        self._connections: set[Socket] = set()
        self._sockets: dict[str, Socket] = {}
        #: When each registered id's login was asked for (wall clock, ms): a duplicate-login
        #: notice from an older login is stale (:meth:`logged_in_elsewhere`).
        self._logins: dict[str, int] = {}
        self._rooms = RoomIndex()
        self._all_gone: asyncio.Event | None = None

    # -- connections (accepted or not) ----------------------------------------------------------

    def add_connection(self, socket: Socket) -> None:
        self._connections.add(socket)

    def discard_connection(self, socket: Socket) -> None:
        self._connections.discard(socket)
        if not self._connections and self._all_gone is not None:
            self._all_gone.set()

    def connections(self) -> list[Socket]:
        """A snapshot of the open connections."""
        return list(self._connections)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def wait_no_connections(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the last connection to end; True when none is left."""
        if not self._connections:
            return True
        self._all_gone = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._all_gone = None

    # -- the socket registry ------------------------------------------------------------------

    def register(self, socket_id: str, socket: Socket, *, since: int | None = None) -> None:
        """Accept ``socket`` under ``socket_id`` (``set_user_socket``). ``since``: when the
        login was asked for (ms since the epoch; the upgrade request's arrival for a socket
        registered by ``authenticate``), now by default."""
        check_name("socket_id", socket_id)
        if not isinstance(socket, Socket):
            raise TypeError(f"socket must be a wsfleet Socket, got {socket!r}")
        if not socket.is_open:
            raise ValueError(f"{socket!r} is closed and cannot be registered")
        current = self._sockets.get(socket_id)
        if current is socket:
            return
        if socket.id is not None and socket.id != socket_id:
            self.unregister(socket)
        if current is not None:
            self.stats.duplicate_logins += 1
            policy = self.settings.duplicate_policy
            if policy is DuplicatePolicy.REJECT_NEW:
                socket.close(CloseCode.DUPLICATE_LOGIN, "duplicate login")
                raise DuplicateSocketError(f"socket id {socket_id!r} is already connected")
            # The old socket keeps no claim on the id: its close cannot remove the new mapping.
            current.id = None
            if self.recovery is not None:
                self.recovery.unregistered(current)
            if policy is DuplicatePolicy.CLOSE_OLD:
                current.close(CloseCode.DUPLICATE_LOGIN, "logged in elsewhere")
        socket.id = socket_id
        socket.cancel_auth_timer()
        self._sockets[socket_id] = socket
        login = self._logins[socket_id] = since if since is not None else now_ms()
        self.propagation.claim(socket_id, login)
        if self.recovery is not None:
            self.recovery.registered(socket)

    def remove(self, socket_id: str, socket: Socket | None = None) -> bool:
        """Forget ``socket_id`` (with ``socket``, only if the id is still that socket's)."""
        current = self._sockets.get(socket_id)
        if current is None or (socket is not None and current is not socket):
            return False
        self.unregister(current)
        return True

    def unregister(self, socket: Socket, *, release: bool = True) -> None:
        """Forget the socket's id and rooms; ``release`` gives the id back to the fleet."""
        socket_id = socket.id
        if socket_id is None:
            return
        socket.id = None
        if self.recovery is not None:
            self.recovery.unregistered(socket)
        if self._sockets.get(socket_id) is socket:
            del self._sockets[socket_id]
            self._logins.pop(socket_id, None)
            if self.presence is not None:
                self._announce_leaves(socket_id)
            propagation = self.propagation
            joined = self._rooms.joined_rooms(socket_id, None) if propagation.per_room else {}
            emptied = self._rooms.remove_socket(socket_id)
            if release:
                propagation.release(socket_id)
            for namespace, room_ids in joined.items():
                for room_id in room_ids:
                    if self._rooms.members(namespace, room_id) is None:
                        propagation.room_emptied(namespace, room_id)
            for namespace in emptied:
                propagation.namespace_emptied(namespace)

    def _announce_leaves(self, socket_id: str) -> None:
        presence = self.presence
        assert presence is not None
        for namespace, rooms in self._rooms.joined_rooms(socket_id, None).items():
            if presence.handles(namespace):
                for room_id in rooms:
                    presence.left(namespace, room_id, socket_id)

    def logged_in_elsewhere(self, socket_id: str, since: object = None) -> bool:
        """Another node registered ``socket_id`` (a login asked for at ``since``, ms): forget
        (and, by policy, close) ours. A notice of a login older than ours is stale — the other
        node finished an older connection after ours (a slow handshake, a late notice of a
        connection we replaced): ours stays and claims the id again, so the other node gets a
        notice with our newer time and closes its socket."""
        socket = self._sockets.get(socket_id)
        if socket is None:
            return False
        ours = self._logins.get(socket_id)
        if type(since) is int and ours is not None and since < ours:
            self.stats.stale_duplicate_notices += 1
            self.propagation.claim(socket_id, ours)
            return False
        self.stats.duplicate_logins += 1
        self.unregister(socket, release=False)
        if self.settings.duplicate_policy is not DuplicatePolicy.REPLACE:
            socket.close(CloseCode.DUPLICATE_LOGIN, "logged in elsewhere")
        return True

    def get(self, socket_id: str) -> Socket | None:
        return self._sockets.get(socket_id)

    def sockets(self) -> list[Socket]:
        return list(self._sockets.values())

    def socket_ids(self) -> list[str]:
        return list(self._sockets)

    @property
    def socket_count(self) -> int:
        return len(self._sockets)

    # -- rooms --------------------------------------------------------------------------------

    def join(self, namespace: str, room_id: str, socket_id: str) -> None:
        check_name("namespace", namespace)
        check_name("room_id", room_id)
        check_name("socket_id", socket_id)
        check_namespace(namespace)
        if socket_id not in self._sockets:
            raise UnknownSocketError(
                f"socket id {socket_id!r} is not registered on this node; "
                "call set_user_socket() before join_room()"
            )
        presence = self.presence
        announce = (
            presence is not None
            and presence.handles(namespace)
            and not self._rooms.is_joined(socket_id, namespace, room_id)
        )
        propagation = self.propagation
        new_room = propagation.per_room and self._rooms.members(namespace, room_id) is None
        if self._rooms.join(namespace, room_id, socket_id):
            propagation.namespace_used(namespace)
        if new_room:
            propagation.room_used(namespace, room_id)
        if announce and presence is not None:
            presence.joined(namespace, room_id, socket_id)
        if self.recovery is not None:
            self.recovery.joined(namespace, room_id, socket_id)

    def leave(self, namespace: str, room_id: str, socket_id: str) -> bool:
        check_name("namespace", namespace)
        check_name("room_id", room_id)
        check_name("socket_id", socket_id)
        was = self._rooms.is_joined(socket_id, namespace, room_id)
        if was and self.recovery is not None:
            self.recovery.left(namespace, room_id, socket_id)
        namespace_emptied = self._rooms.leave(namespace, room_id, socket_id)
        propagation = self.propagation
        if was and propagation.per_room and self._rooms.members(namespace, room_id) is None:
            propagation.room_emptied(namespace, room_id)
        if namespace_emptied:
            propagation.namespace_emptied(namespace)
        if was and self.presence is not None and self.presence.handles(namespace):
            self.presence.left(namespace, room_id, socket_id)
        return was

    def remove_room(self, namespace: str, room_id: str) -> None:
        presence = self.presence
        members: tuple[str, ...] = ()
        if presence is not None and presence.handles(namespace):
            members = tuple(self._rooms.members(namespace, room_id) or ())
        existed = self._rooms.members(namespace, room_id) is not None
        namespace_emptied = self._rooms.remove_room(namespace, room_id)
        if existed and self.propagation.per_room:
            self.propagation.room_emptied(namespace, room_id)
        if namespace_emptied:
            self.propagation.namespace_emptied(namespace)
        if presence is not None:
            for socket_id in members:
                presence.left(namespace, room_id, socket_id)

    def room_socket_count(self, namespace: str, room_id: str | None, *, exact: bool) -> int:
        return self._rooms.socket_count(namespace, room_id, exact=exact)

    def room_socket_ids(self, namespace: str, room_id: str | None, *, exact: bool) -> set[str]:
        return self._rooms.socket_ids(namespace, room_id, exact=exact)

    def joined_rooms(
        self, socket_id: str, namespace_prefix: str | None
    ) -> dict[str, frozenset[str]]:
        check_name("socket_id", socket_id)
        return self._rooms.joined_rooms(socket_id, namespace_prefix)

    def is_joined(self, socket_id: str, namespace: str, room_id: str | None) -> bool:
        return self._rooms.is_joined(socket_id, namespace, room_id)

    def room_count(self, namespace: str, *, exact: bool = True) -> int:
        return self._rooms.room_count(namespace, exact=exact)

    def room_ids(self, namespace: str, *, exact: bool = True) -> list[str]:
        return self._rooms.room_ids(namespace, exact=exact)

    def namespace_members(self, namespace: str) -> int:
        """Room memberships in one namespace (O(rooms): for metrics)."""
        return self._rooms.member_count(namespace)

    def total_rooms(self) -> int:
        return self._rooms.total_rooms()

    def total_members(self) -> int:
        return self._rooms.total_members()

    # -- sending: local first, then the rest of the fleet ---------------------------------------

    def broadcast(self, text: bytes, *, local_only: bool = False) -> int:
        self.stats.broadcasts += 1
        if self.recovery is not None:
            return self.recovery.broadcast(text, local_only)
        sent = self.deliver_all(build_text_frame(text))
        if not local_only:
            self.propagation.publish_broadcast(text)
        return sent

    def to_room(
        self,
        namespace: str,
        room_id: str,
        text: bytes,
        exclude: list[str],
        *,
        local_only: bool = False,
    ) -> int:
        if self.recovery is not None:
            return self.recovery.to_room(namespace, room_id, text, exclude, local_only)
        sent = self.deliver_room(namespace, room_id, build_text_frame(text), exclude)
        if not local_only:
            self.propagation.publish_room(namespace, room_id, text, exclude)
        return sent

    def to_id(self, socket_id: str, text: bytes) -> bool:
        if self.recovery is not None:
            return self.recovery.to_id(socket_id, text)
        socket = self._sockets.get(socket_id)
        if socket is not None:
            return socket.send_frame(build_text_frame(text))
        return self.propagation.send_private([socket_id], text)

    def to_ids(self, socket_ids: Iterable[str], text: bytes) -> int:
        if self.recovery is not None:
            return self.recovery.to_ids(socket_ids, text)
        sent, missing = self.deliver_ids(socket_ids, build_text_frame(text))
        if missing:
            self.propagation.send_private_ids(missing, text)
        return sent

    # -- local delivery of a pre-built frame -----------------------------------------------------

    def deliver_all(self, frame: bytes) -> int:
        sent = 0
        for socket in list(self._sockets.values()):
            if socket.send_frame(frame):
                sent += 1
        return sent

    def deliver_room(
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

    def deliver_one(self, socket_id: str, frame: bytes) -> bool:
        """Write to one local socket; False when it is not here (or not open)."""
        socket = self._sockets.get(socket_id)
        return socket is not None and socket.send_frame(frame)

    def deliver_ids(self, socket_ids: Iterable[str], frame: bytes) -> tuple[int, list[str]]:
        """Write to the local ones; returns (written, ids not on this node)."""
        sent = 0
        missing: list[str] = []
        sockets = self._sockets
        for socket_id in socket_ids:
            key: object = socket_id  # callers from untyped code pass anything
            if not isinstance(key, str):
                continue
            socket = sockets.get(socket_id)
            if socket is None:
                missing.append(socket_id)
            elif socket.send_frame(frame):
                sent += 1
        return sent, missing


def now_ms() -> int:
    """Wall-clock milliseconds: login times are compared across nodes."""
    return time.time_ns() // 1_000_000
