"""``wsfleet serve`` as a user runs it: a real process, the demo app, flags and env vars."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.conftest import Connect
from tests.procs import NodeProcess, start_node

pytestmark = pytest.mark.integration


@pytest.fixture
async def node() -> AsyncIterator[NodeProcess]:
    started = await start_node(["--server-ping-interval", "5"])
    yield started
    if started.proc.returncode is None:
        started.proc.kill()
        await started.proc.wait()


async def test_demo_app_contract(node: NodeProcess, connect: Connect) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(node.url(query="token=deny"))
    assert info.value.status == 401
    alice = await connect(node.url(query="id=alice&name=Alice"))
    bob = await connect(node.url(query="id=bob"))
    await alice.send('{"event":"echo","payload":{"a":[1,"x"]},"callbackId":"1"}')
    assert await alice.recv() == '{"payload":{"a":[1,"x"]},"callbackId":"1"}'
    await alice.send('{"event":"join","payload":{"room":"lobby"},"callbackId":"2"}')
    assert await alice.recv() == '{"payload":{"room":"lobby","members":["alice"]},"callbackId":"2"}'
    await bob.send('{"event":"join","payload":{"room":"lobby"},"callbackId":"3"}')
    assert (
        await alice.recv()
        == '{"event":"joined","payload":{"room":"lobby","id":"bob","name":"bob"}}'
    )
    assert await bob.recv() == (
        '{"payload":{"room":"lobby","members":["alice","bob"]},"callbackId":"3"}'
    )
    await bob.send('{"event":"say","payload":{"room":"lobby","text":"hi"},"callbackId":"4"}')
    said = await alice.recv()
    assert said.startswith('{"event":"said","payload":{"room":"lobby","id":"bob","name":"bob",')
    assert await bob.recv() == said  # the sender gets the same frame
    assert await bob.recv() == '{"payload":{"ok":true},"callbackId":"4"}'
    await alice.send('{"event":"whoami","payload":1,"callbackId":"5"}')
    assert await alice.recv() == (
        '{"payload":{"id":"alice","name":"Alice","params":{"id":"alice","name":"Alice"},'
        '"path":"ws"},"callbackId":"5"}'
    )
    # a second login as alice replaces the first one
    alice2 = await connect(node.url(query="id=alice"))
    await alice2.send("")
    assert await alice2.recv() == ""
    assert await alice.closed() == 4012
    await bob.send('{"event":"close-me","payload":{"code":4011,"reason":"bye"},"callbackId":"6"}')
    assert await bob.recv() == '{"payload":{"ok":true},"callbackId":"6"}'
    assert await bob.closed() == 4011


async def test_demo_page_is_served(node: NodeProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{node.port}/") as resp:
            assert resp.status == 200
            assert "text/html" in resp.headers["Content-Type"]
            assert "wsfleet-client.js" in await resp.text()
        async with session.get(f"http://127.0.0.1:{node.port}/../pyproject.toml") as resp:
            assert resp.status == 404


async def test_sigterm_closes_clients_with_1001_and_exits_0(
    node: NodeProcess, connect: Connect
) -> None:
    client = await connect(node.url(query="id=x"))
    await client.send("")
    assert await client.recv() == ""
    assert await node.stop(signal.SIGTERM) == 0
    assert await client.closed() == 1001


async def test_user_app_from_flag_and_env(tmp_path: object, connect: Connect) -> None:
    node = await start_node(
        ["--app", "tests.fixtures.sample_app:setup"],
        env={"WSFLEET_HEARTBEAT": "hb", "PYTHONPATH": os.getcwd()},
    )
    try:
        client = await connect(node.url(query="id=a"))
        await client.send("hb")
        assert await client.recv() == "hb"
        await client.send('{"event":"add","payload":[2,3],"callbackId":"s"}')
        assert await client.recv() == '{"payload":5,"callbackId":"s"}'
    finally:
        await node.stop()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsfleet", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def test_help_explains_every_option() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in (
        "--port",
        "--app",
        "--server-ping-interval",
        "--max-send-buffer",
        "WSFLEET_HEARTBEAT",
        "--duplicate-policy",
    ):
        assert flag in result.stdout


def test_invalid_configuration_fails_with_one_clear_sentence() -> None:
    result = run_cli("serve", env={"WSFLEET_SERVER_PING_INTERVAL": "-1"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "wsfleet: configuration error: invalid ServerSettings: "
        "server_ping_interval must be positive, got -1.0"
    )
    result = run_cli("serve", "--app", "nowhere:nothing")
    assert result.returncode == 2 and "cannot import the app module 'nowhere'" in result.stderr
    result = run_cli("serve", env={"WSFLEET_PORT": "http"})
    assert result.returncode == 2 and "WSFLEET_PORT='http' is invalid" in result.stderr


async def test_port_in_use_is_reported(node: NodeProcess) -> None:
    result = await asyncio.to_thread(run_cli, "serve", "--port", str(node.port))
    assert result.returncode == 1
    assert "cannot start" in result.stderr
