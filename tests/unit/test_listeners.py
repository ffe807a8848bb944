import pytest

from wsfleet.listeners import ListenerTable


def f1(*a: object) -> None: ...
def f2(*a: object) -> None: ...


def test_on_once_off_with_tags() -> None:
    table: ListenerTable[object] = ListenerTable()
    table.add("e", f1, tag="t")
    table.add("e", f2, once=True)
    first = table.take("e")
    assert first is not None and [entry.fn for entry in first] == [f1, f2]
    second = table.take("e")
    assert second is not None and [entry.fn for entry in second] == [f1]
    assert table.remove("e", "t") == 1
    assert table.take("e") is None


def test_off_by_function_and_all() -> None:
    table: ListenerTable[object] = ListenerTable()
    table.add("e", f1)
    table.add("e", f2)
    assert table.remove("e", f1) == 1
    assert table.count("e") == 1
    table.add("e", f1)
    assert table.remove("e") == 2
    assert not table.has("e")


def test_adding_during_dispatch_does_not_change_the_snapshot() -> None:
    table: ListenerTable[object] = ListenerTable()
    table.add("e", f1)
    snapshot = table.take("e")
    table.add("e", f2)
    assert snapshot is not None and len(snapshot) == 1


def test_bad_arguments_and_leak_guard() -> None:
    table: ListenerTable[object] = ListenerTable(max_per_event=2)
    with pytest.raises(TypeError):
        table.add("", f1)
    with pytest.raises(TypeError):
        table.add("e", "not callable")  # type: ignore[arg-type]
    table.add("e", f1)
    table.add("e", f2)
    with pytest.raises(ValueError, match="listener leak"):
        table.add("e", f1)
