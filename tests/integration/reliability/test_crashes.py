"""Crashes handled fast, with real ``wsfleet serve`` processes: a node restarted at once under its
own name (same instance token) takes its name back and serves; other nodes learn that a node left
(goodbye or lease expiry) and report ``left`` / not delivered instead of waiting for a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from tests.conftest import Connect
from tests.integration.fleet.conftest import MakeFleet, Node
from tests.integration.fleet.conftest import make_fleet as make_fleet
from tests.procs import NodeProcess, start_node
from tests.redis_procs import RedisProcess

from wsfleet.bus import Outcome

pytestmark = pytest.mark.integration

SLOW_LEASE = ["--lease-ttl", "30", "--lease-refresh", "0.5"]
FAST_LEASE = ["--lease-ttl", "1.5", "--lease-refresh", "0.3", "--probe-interval", "0.5"]


async def _kill(node: NodeProcess) -> None:
    if node.proc.returncode is None:
        node.proc.kill()
        await node.proc.wait()


async def test_a_node_restarted_at_once_with_its_instance_token_takes_its_name_back(
    redis: RedisProcess,
) -> None:
    args = ["--redis", redis.address, "--server-name", "pod-0", *SLOW_LEASE]
    first = await start_node(args, env={"WSFLEET_INSTANCE_TOKEN": "uid-1"})
    await _kill(first)  # kill -9: its lease stays for 30 s
    started = time.monotonic()
    second = await start_node(args, env={"WSFLEET_INSTANCE_TOKEN": "uid-1"})
    try:
        assert time.monotonic() - started < 10  # serving again at once, not after 30 s
        assert second.proc.returncode is None
    finally:
        await _kill(second)


async def test_another_instance_under_a_held_name_is_still_refused(redis: RedisProcess) -> None:
    args = ["--redis", redis.address, "--server-name", "pod-0", *SLOW_LEASE]
    first = await start_node(args, env={"WSFLEET_INSTANCE_TOKEN": "uid-1"})
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "wsfleet", "serve", "--port", "0", *args],
            env={"WSFLEET_INSTANCE_TOKEN": "uid-2", "PATH": ""},
            capture_output=True,
            timeout=30,
        )
        assert result.returncode != 0
        assert b"another live node is already named 'pod-0'" in result.stdout + result.stderr
    finally:
        await _kill(first)


async def test_after_kill_9_calls_report_left_and_direct_messages_not_delivered(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    victim = await start_node(["--redis", redis.address, "--server-name", "victim", *FAST_LEASE])
    try:
        (observer,) = await make_fleet([redis], 1, names=["observer"])
        server = observer.server
        server.on_cross_server_event("who", lambda data, reply: "observer")
        client = await connect(victim.url(query="id=doomed"))
        await client.send("")
        assert await client.recv() == ""
        registry = server.fleet.registry  # type: ignore[union-attr]
        async with asyncio.timeout(10):
            while set(server.live_nodes()) != {"observer", "victim"}:
                await registry.refresh()
        assert await server.to_socket_id_confirmed("doomed", "hello", 1)

        call = asyncio.create_task(server.emit_cross_server_async("who", 1, mode="all", timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)
        await victim.proc.wait()
        assert not await server.to_socket_id_confirmed("doomed", "hello", 2)  # at once
        result = await call
        assert time.monotonic() - started < 10  # the lease (1.5 s), not the call's 30 s
        assert result.outcomes == {"observer": Outcome.ANSWERED, "victim": Outcome.LEFT}
        assert not result.success and "victim" in (result.message or "")
    finally:
        await _kill(victim)


@contextlib.asynccontextmanager
async def observer_and_leaving(
    redis: RedisProcess, make_fleet: MakeFleet
) -> AsyncIterator[tuple[Node, NodeProcess]]:
    """An in-process node "observer" that answers "who", and a node process "leaving" (no
    handler, slow leases: only its goodbye says it left), both seen live by the observer."""
    leaving = await start_node(["--redis", redis.address, "--server-name", "leaving", *SLOW_LEASE])
    try:
        (observer,) = await make_fleet(
            [redis], 1, names=["observer"], lease_refresh=20.0, lease_ttl=30.0
        )
        server = observer.server
        server.on_cross_server_event("who", lambda data, reply: "observer")
        registry = server.fleet.registry  # type: ignore[union-attr]
        async with asyncio.timeout(10):
            while set(server.live_nodes()) != {"observer", "leaving"}:
                await registry.refresh()
        yield observer, leaving
    finally:
        await _kill(leaving)


async def test_a_clean_exit_says_goodbye_and_calls_stop_waiting_for_it(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    async with observer_and_leaving(redis, make_fleet) as (observer, leaving):
        server = observer.server
        call = asyncio.create_task(server.emit_cross_server_async("who", 1, mode="all", timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert await leaving.stop() == 0
        result = await call
        assert time.monotonic() - started < 10  # its goodbye, not a lease of 30 s
        assert result.outcomes["leaving"] is Outcome.LEFT
        assert "leaving" not in server.live_nodes()


async def test_a_quorum_out_of_reach_ends_when_a_node_leaves(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    """A quorum of 2 out of {observer, leaving}: the observer answers, the other node has no
    handler; once it leaves, nobody left can make the quorum and the call ends at once."""
    async with observer_and_leaving(redis, make_fleet) as (observer, leaving):
        call = asyncio.create_task(
            observer.server.emit_cross_server_async(
                "who", 1, mode="quorum", expected_responses=2, timeout=30
            )
        )
        await asyncio.sleep(0.1)
        assert not call.done()  # one answer of two
        started = time.monotonic()
        assert await leaving.stop() == 0
        result = await call
        assert time.monotonic() - started < 10  # its goodbye, not the call's 30 s
        assert not result.success and "quorum of 2 out of reach" in (result.message or "")
        assert result.outcomes == {"observer": Outcome.ANSWERED, "leaving": Outcome.LEFT}
