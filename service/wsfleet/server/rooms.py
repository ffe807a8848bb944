"""The local room index: namespaces of rooms of socket ids, and each socket's rooms.

Pure data structure, no I/O. Both directions are kept in step, empty rooms and namespaces are
deleted at once (the original left empty namespaces behind, W8), and every query returns a copy
(the original returned its live internal maps).

Matching: ``exact=True`` compares ids; ``exact=False`` matches room ids (or namespaces, for the
namespace-level queries) that start with the given prefix, as the original's ``exactMatch: false``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class RoomIndex:
    __slots__ = ("_rooms", "_socket_rooms")

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, set[str]]] = {}
        self._socket_rooms: dict[str, dict[str, set[str]]] = {}

    def join(self, namespace: str, room_id: str, socket_id: str) -> bool:
        """Add a member; returns True when the namespace was empty before (first local room)."""
        rooms = self._rooms.get(namespace)
        new_namespace = rooms is None
        if rooms is None:
            rooms = self._rooms[namespace] = {}
        rooms.setdefault(room_id, set()).add(socket_id)
        self._socket_rooms.setdefault(socket_id, {}).setdefault(namespace, set()).add(room_id)
        return new_namespace

    def leave(self, namespace: str, room_id: str, socket_id: str) -> bool:
        """Remove a member; returns True when the namespace became empty."""
        rooms = self._rooms.get(namespace)
        if rooms is None:
            return False
        members = rooms.get(room_id)
        if members is None or socket_id not in members:
            return False
        members.discard(socket_id)
        if not members:
            del rooms[room_id]
        self._forget(socket_id, namespace, room_id)
        if not rooms:
            del self._rooms[namespace]
            return True
        return False

    def remove_room(self, namespace: str, room_id: str) -> bool:
        """Delete a room and its members' back-references; True when the namespace became empty."""
        rooms = self._rooms.get(namespace)
        if rooms is None:
            return False
        members = rooms.pop(room_id, None)
        if members is None:
            return False
        for socket_id in members:
            self._forget(socket_id, namespace, room_id)
        if not rooms:
            del self._rooms[namespace]
            return True
        return False

    def remove_socket(self, socket_id: str) -> list[str]:
        """Leave every room; returns the namespaces that became empty."""
        emptied: list[str] = []
        for namespace, room_ids in self._socket_rooms.pop(socket_id, {}).items():
            rooms = self._rooms.get(namespace)
            if rooms is None:
                continue
            for room_id in room_ids:
                members = rooms.get(room_id)
                if members is not None:
                    members.discard(socket_id)
                    if not members:
                        del rooms[room_id]
            if not rooms:
                del self._rooms[namespace]
                emptied.append(namespace)
        return emptied

    def _forget(self, socket_id: str, namespace: str, room_id: str) -> None:
        by_ns = self._socket_rooms.get(socket_id)
        if by_ns is None:
            return
        room_ids = by_ns.get(namespace)
        if room_ids is None:
            return
        room_ids.discard(room_id)
        if not room_ids:
            del by_ns[namespace]
            if not by_ns:
                del self._socket_rooms[socket_id]

    # -- queries ---------------------------------------------------------------------------

    def members(self, namespace: str, room_id: str) -> set[str] | None:
        """The live member set of one room, for fan-out only (callers must not keep it)."""
        rooms = self._rooms.get(namespace)
        return None if rooms is None else rooms.get(room_id)

    def _matching(self, namespace: str, room_id: str | None, exact: bool) -> Iterator[set[str]]:
        rooms = self._rooms.get(namespace)
        if rooms is None:
            return
        if room_id is None:
            yield from rooms.values()
        elif exact:
            members = rooms.get(room_id)
            if members is not None:
                yield members
        else:
            for rid, members in rooms.items():
                if rid.startswith(room_id):
                    yield members

    def socket_count(
        self, namespace: str, room_id: str | None = None, *, exact: bool = True
    ) -> int:
        return sum(len(m) for m in self._matching(namespace, room_id, exact))

    def socket_ids(
        self, namespace: str, room_id: str | None = None, *, exact: bool = True
    ) -> set[str]:
        result: set[str] = set()
        for members in self._matching(namespace, room_id, exact):
            result |= members
        return result

    def joined_rooms(
        self, socket_id: str, namespace_prefix: str | None = None
    ) -> dict[str, frozenset[str]]:
        by_ns = self._socket_rooms.get(socket_id, {})
        return {
            ns: frozenset(ids)
            for ns, ids in by_ns.items()
            if namespace_prefix is None or ns.startswith(namespace_prefix)
        }

    def is_joined(self, socket_id: str, namespace: str, room_id: str | None = None) -> bool:
        room_ids = self._socket_rooms.get(socket_id, {}).get(namespace)
        if not room_ids:
            return False
        return room_id is None or room_id in room_ids

    def _namespaces(self, namespace: str, exact: bool) -> Iterable[dict[str, set[str]]]:
        if exact:
            rooms = self._rooms.get(namespace)
            return () if rooms is None else (rooms,)
        return [rooms for ns, rooms in self._rooms.items() if ns.startswith(namespace)]

    def room_count(self, namespace: str, *, exact: bool = True) -> int:
        return sum(len(rooms) for rooms in self._namespaces(namespace, exact))

    def room_ids(self, namespace: str, *, exact: bool = True) -> list[str]:
        seen: dict[str, None] = {}
        for rooms in self._namespaces(namespace, exact):
            seen.update(dict.fromkeys(rooms))
        return list(seen)

    def namespaces(self) -> list[str]:
        return list(self._rooms)

    def has_namespace(self, namespace: str) -> bool:
        return namespace in self._rooms

    # -- totals, for metrics (O(rooms): read at scrape time only) ----------------------------

    def total_rooms(self) -> int:
        return sum(len(rooms) for rooms in self._rooms.values())

    def total_members(self) -> int:
        return sum(len(members) for rooms in self._rooms.values() for members in rooms.values())

    def member_count(self, namespace: str) -> int:
        return sum(len(members) for members in self._rooms.get(namespace, {}).values())
