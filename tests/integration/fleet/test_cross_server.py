"""Cross-server events and calls (spec §5.10) with the fixes of W1, W2 and W18."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.redis_procs import RedisProcess

from wsfleet.bus import CallMode, Outcome

pytestmark = pytest.mark.integration


def answer_with_name(node: Node) -> None:
    @node.server.on_cross_server_event("ask")
    def ask(data: dict[str, Any], reply: Any) -> Any:
        return {"answer": node.name, "q": data["payload"]}


async def test_original_callback_variant_and_result_shapes(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b, c = await make_fleet([redis], 3)
    for node in (a, b, c):
        answer_with_name(node)
    results: list[dict[str, Any]] = []
    done = asyncio.Event()

    def callback(result: dict[str, Any]) -> None:
        results.append(result)
        if result.get("remainingResponses") == 0 or not result["success"]:
            done.set()

    callback_id = a.server.emit_cross_server("ask", {"q": 1}, callback, expected_responses=3)
    assert callback_id is not None and callback_id.startswith("node1-")
    await asyncio.wait_for(done.wait(), 5)
    assert [r["remainingResponses"] for r in results] == [2, 1, 0]
    assert {r["data"]["senderServer"] for r in results} == {a.name, b.name, c.name}
    first = results[0]["data"]
    assert first["event"] == "_Cs_Cb_" and first["isCallback"] is True


async def test_promise_variant_times_out_with_the_original_shape(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b = await make_fleet([redis], 2)
    answer_with_name(b)
    result = await a.server.emit_cross_server_with_promise(
        "ask", 1, expected_responses=2, timeout=0.3
    )
    assert result["success"] is False
    assert result["message"] == "Cross-server callback timed out."
    assert result["unrespondedCount"] == 1
    assert set(result["responses"]) == {b.name}


async def test_targeted_call_and_exclude_self(redis: RedisProcess, make_fleet: MakeFleet) -> None:
    a, b, c = await make_fleet([redis], 3)
    for node in (a, b, c):
        answer_with_name(node)
    result = await a.server.emit_cross_server_async("ask", 2, target_server=[c.name])
    assert result.success and result.payloads == {c.name: {"answer": c.name, "q": 2}}
    result = await a.server.emit_cross_server_async("ask", 3, mode="all", exclude_self=True)
    assert result.success and set(result.payloads) == {b.name, c.name}


async def test_all_live_nodes_mode_reports_each_node(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b, c = await make_fleet([redis], 3)
    answer_with_name(a)
    answer_with_name(b)  # c has no handler: it never answers
    result = await a.server.emit_cross_server_async("ask", 4, mode=CallMode.ALL, timeout=0.5)
    assert not result.success
    assert result.outcomes == {
        a.name: Outcome.ANSWERED,
        b.name: Outcome.ANSWERED,
        c.name: Outcome.TIMED_OUT,
    }


async def test_first_and_quorum_modes(redis: RedisProcess, make_fleet: MakeFleet) -> None:
    a, b, c = await make_fleet([redis], 3)
    for node in (b, c):
        answer_with_name(node)
    first = await a.server.emit_cross_server_async("ask", 5, mode="first", exclude_self=True)
    assert first.success and len(first.responses) == 1
    quorum = await a.server.emit_cross_server_async(
        "ask", 6, mode="quorum", expected_responses=2, exclude_self=True
    )
    assert quorum.success and set(quorum.responses) == {b.name, c.name}


async def test_w1_deleting_a_pending_callback_is_safe(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    (a,) = await make_fleet([redis], 1)
    calls: list[dict[str, Any]] = []
    callback_id = a.server.emit_cross_server("nobody", 1, calls.append, timeout=0.1)
    assert callback_id is not None
    assert a.server.delete_cross_server_callback(callback_id) is True
    assert a.server.delete_cross_server_callback(callback_id) is False
    await asyncio.sleep(0.3)  # past the deadline: no crash, no late callback
    assert calls == []
    assert len(a.server.fleet.calls) == 0  # type: ignore[union-attr]


async def test_cancelling_an_awaited_call_cleans_up(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    (a,) = await make_fleet([redis], 1)
    task = asyncio.create_task(a.server.emit_cross_server_async("nobody", 1, timeout=30))
    await asyncio.sleep(0.05)
    assert len(a.server.fleet.calls) == 1  # type: ignore[union-attr]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(a.server.fleet.calls) == 0  # type: ignore[union-attr]


async def test_w2_replies_go_to_the_callers_inbox_only(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b, c = await make_fleet([redis], 3)
    answer_with_name(b)
    c_bus = c.server.fleet.bus  # type: ignore[union-attr]
    before = c_bus.stats.received
    for i in range(10):
        result = await a.server.emit_cross_server_async("ask", i, target_server=b.name)
        assert result.success
    # c saw the 10 requests (bridge channel) but none of the 10 replies
    assert c_bus.stats.received - before == 10


async def test_w18_local_listeners_cannot_change_what_other_nodes_receive(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b = await make_fleet([redis], 2)

    @a.server.on_cross_server_event("mutate")
    def vandal(data: dict[str, Any], reply: Any) -> str:
        data["payload"]["x"] = "changed"
        return "changed it"

    @b.server.on_cross_server_event("mutate")
    def reader(data: dict[str, Any], reply: Any) -> Any:
        return data["payload"]

    result = await a.server.emit_cross_server_async(
        "mutate", {"x": "original"}, target_server=[a.name, b.name]
    )
    assert result.success
    assert result.payloads == {a.name: "changed it", b.name: {"x": "original"}}


async def test_local_first_self_reply_is_not_published(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    (a,) = await make_fleet([redis], 1)
    answer_with_name(a)
    bus = a.server.fleet.bus  # type: ignore[union-attr]
    published = bus.stats.published
    result = await a.server.emit_cross_server_async("ask", 7, target_server=a.name)
    assert result.payloads == {a.name: {"answer": a.name, "q": 7}}
    assert bus.stats.published == published  # only target is self: nothing went to Redis


async def test_pending_call_table_is_bounded(redis: RedisProcess, make_fleet: MakeFleet) -> None:
    from wsfleet.bus import TooManyPendingCallsError

    (a,) = await make_fleet([redis], 1, max_pending_calls=2)
    a.server.emit_cross_server("nobody", 1, lambda r: None, timeout=5)
    a.server.emit_cross_server("nobody", 2, lambda r: None, timeout=5)
    with pytest.raises(TooManyPendingCallsError):
        a.server.emit_cross_server("nobody", 3, lambda r: None, timeout=5)


async def test_custom_channels(redis: RedisProcess, make_fleet: MakeFleet) -> None:
    a, b = await make_fleet([redis], 2, custom_channels=("jobs",))
    got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    b.server.set_custom_channel_handler(lambda channel, message: got.put_nowait((channel, message)))
    await b.server.fleet.bus.wait_subscribed("jobs")  # type: ignore[union-attr]
    assert a.server.publish_redis_message("jobs", {"task": 1})
    assert a.server.publish_redis_message("jobs", [1]) is False  # type: ignore[arg-type]
    channel, message = await asyncio.wait_for(got.get(), 5)
    assert channel == "jobs" and message["task"] == 1


async def test_cluster_queries(redis: RedisProcess, make_fleet: MakeFleet, connect) -> None:
    from tests.integration.fleet.conftest import join

    a, b = await make_fleet([redis], 2)
    await join(connect, a, "a1")
    await join(connect, b, "b1")
    await join(connect, b, "b2")
    a.server.join_room("game", "r1", "a1")
    b.server.join_room("game", "r1", "b1")
    b.server.join_room("game", "r2", "b2")
    assert await a.server.cluster_online_count() == 3
    assert await a.server.cluster_room_socket_ids("game", "r1") == {"a1", "b1"}
    assert await a.server.cluster_room_ids("game") == {"r1", "r2"}
    assert await a.server.locate_socket("b2") == b.name
    assert await a.server.locate_socket("nobody") is None
