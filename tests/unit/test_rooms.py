from wsfleet.server.rooms import RoomIndex


def make() -> RoomIndex:
    rooms = RoomIndex()
    rooms.join("game", "r1", "a")
    rooms.join("game", "r1", "b")
    rooms.join("game", "r10", "c")
    rooms.join("game", "x", "a")
    rooms.join("gamelobby", "l", "d")
    return rooms


def test_exact_and_prefix_queries_as_the_original() -> None:
    rooms = make()
    assert rooms.socket_count("game", "r1") == 2
    assert rooms.socket_count("game", "r1", exact=False) == 3
    assert rooms.socket_count("game") == 4
    assert rooms.socket_ids("game", "r1", exact=False) == {"a", "b", "c"}
    assert rooms.room_count("game") == 3
    assert rooms.room_count("game", exact=False) == 4
    assert sorted(rooms.room_ids("game", exact=False)) == ["l", "r1", "r10", "x"]
    assert rooms.joined_rooms("a") == {"game": frozenset({"r1", "x"})}
    assert rooms.is_joined("a", "game")
    assert rooms.is_joined("a", "game", "x")
    assert not rooms.is_joined("a", "game", "r10")


def test_queries_return_copies_not_live_state() -> None:
    rooms = make()
    ids = rooms.socket_ids("game", "r1")
    ids.add("intruder")
    assert rooms.socket_ids("game", "r1") == {"a", "b"}


def test_last_leave_deletes_room_and_namespace() -> None:
    rooms = RoomIndex()
    assert rooms.join("ns", "r", "a") is True
    assert rooms.join("ns", "r", "b") is False
    assert rooms.leave("ns", "r", "a") is False
    assert rooms.leave("ns", "r", "b") is True
    assert rooms.namespaces() == []
    assert rooms.joined_rooms("a") == {}


def test_w8_removing_a_socket_leaves_no_empty_namespace() -> None:
    # W8: the original kept an empty Map per namespace after removeUserSocket.
    rooms = RoomIndex()
    rooms.join("chat", "r", "a")
    rooms.join("chat", "s", "a")
    assert rooms.remove_socket("a") == ["chat"]
    assert rooms.namespaces() == []
    assert not rooms.has_namespace("chat")


def test_remove_room_clears_back_references() -> None:
    rooms = make()
    rooms.remove_room("game", "r1")
    assert rooms.joined_rooms("b") == {}
    assert rooms.joined_rooms("a") == {"game": frozenset({"x"})}
