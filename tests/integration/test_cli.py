"""``wsfleet serve`` as a user runs it: a real process, the demo app, flags and env vars."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import Connect, wait_until
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
    assert await alice.recv() == (
        '{"payload":{"room":"lobby","members":["alice"],"names":{"alice":"Alice"}},'
        '"callbackId":"2"}'
    )
    await bob.send('{"event":"join","payload":{"room":"lobby"},"callbackId":"3"}')
    assert (
        await alice.recv()
        == '{"event":"joined","payload":{"room":"lobby","id":"bob","name":"bob"}}'
    )
    assert await bob.recv() == (
        '{"payload":{"room":"lobby","members":["alice","bob"],'
        '"names":{"alice":"Alice","bob":"bob"}},"callbackId":"3"}'
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


async def test_sigterm_drains_clients_with_1012_and_exits_0(
    node: NodeProcess, connect: Connect
) -> None:
    client = await connect(node.url(query="id=x"))
    await client.send("")
    assert await client.recv() == ""
    assert await node.stop(signal.SIGTERM) == 0
    assert await client.closed() == 1012
    assert b"SIGTERM: draining" in b"".join(node.output)


async def test_a_second_signal_ends_the_drain_at_once(connect: Connect) -> None:
    node = await start_node(["--drain-timeout", "60"])
    clients = [await connect(node.url(query=f"id=c{i}")) for i in range(50)]
    node.proc.send_signal(signal.SIGTERM)
    await wait_until(lambda: b"draining 50 connections over 60.0s" in b"".join(node.output))
    assert await node.stop(signal.SIGINT, timeout=10) == 0  # not 60 s later
    codes = [await c.closed() for c in clients]
    assert set(codes) == {1012, 1001}  # a few drained, the rest closed at once


async def test_internal_port_serves_health_and_metrics(node: NodeProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(node.internal_url + "/healthz") as resp:
            assert resp.status == 200
        async with session.get(node.internal_url + "/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["ready"] is True
        async with session.get(node.internal_url + "/metrics") as resp:
            assert "wsfleet_connections 0.0" in await resp.text()


async def test_a_taken_internal_port_is_one_clear_sentence(node: NodeProcess) -> None:
    assert node.internal_port is not None
    result = await asyncio.to_thread(
        run_cli, "serve", "--port", "0", "--internal-port", str(node.internal_port)
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"wsfleet: cannot start: cannot open the internal port 127.0.0.1:{node.internal_port} "
        "(Address already in use); pass --internal-port 0 for any free port or "
        "--internal-port off"
    )


def test_config_file_env_and_flags_in_that_order(tmp_path: Path) -> None:
    config = tmp_path / "wsfleet.toml"
    config.write_text(
        'port = 7001\nheartbeat = "file"\nredis = ["redis://:s3cret@10.0.0.5:6379"]\n'
        '[ops]\nlog_format = "json"\ninternal_port = 9200\n'
    )
    result = run_cli(
        "config",
        "--print",
        "--config",
        str(config),
        "--internal-port",
        "9300",
        env={"WSFLEET_HEARTBEAT": "env"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"port = 7001  # file {config}" in lines
    assert 'heartbeat = "env"  # env WSFLEET_HEARTBEAT' in lines
    assert "internal_port = 9300  # flag --internal-port" in lines
    assert 'log_format = "json"  # file ' + str(config) in lines
    assert f'redis = ["redis://***@10.0.0.5:6379/0"]  # file {config}' in lines
    assert "s3cret" not in result.stdout
    as_json = run_cli("config", "--print", "--format", "json", "--config", str(config))
    assert json.loads(as_json.stdout)["max_message_size"] == 1048576


def test_config_problems_are_listed_one_per_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('max_mesage_size = 10\nport = "x"\n')
    result = run_cli("config", "--config", str(config), "--server-ping-interval", "0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"wsfleet: configuration error: unknown setting 'max_mesage_size' in {config} "
        "(did you mean 'max_message_size'?)",
        f"wsfleet: configuration error: port = 'x' in {config} is invalid: "
        "expected a port number from 0 to 65535 (0 picks a free one)",
        "wsfleet: configuration error: server_ping_interval must be positive, got 0.0 "
        "(from flag --server-ping-interval)",
    ]
    missing = run_cli("serve", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"wsfleet: configuration error: configuration file {tmp_path / 'nope.toml'} does not exist"
    )


async def test_json_logs_carry_the_node_name(redis: Any) -> None:
    node = await start_node(
        ["--redis", redis.address, "--server-name", "n-json", "--log-format", "json"]
    )
    await node.stop()
    entries = [json.loads(line) for line in node.output if line.startswith(b"{")]
    assert entries, b"".join(node.output)
    assert {e["node"] for e in entries} == {"n-json"}
    assert any(e["msg"] == "SIGTERM: draining" for e in entries), entries


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
        "wsfleet: configuration error: server_ping_interval must be positive, got -1.0 "
        "(from env WSFLEET_SERVER_PING_INTERVAL)"
    )
    result = run_cli("serve", "--app", "nowhere:nothing")
    assert result.returncode == 2 and "cannot import the app module 'nowhere'" in result.stderr
    result = run_cli("serve", env={"WSFLEET_PORT": "http"})
    assert result.returncode == 2 and "WSFLEET_PORT='http' is invalid" in result.stderr


async def test_port_in_use_is_reported(node: NodeProcess) -> None:
    result = await asyncio.to_thread(run_cli, "serve", "--port", str(node.port))
    assert result.returncode == 1
    assert "cannot start" in result.stderr


APP = """
def setup(server):
    @server.on("add")
    def add(socket, payload, ack):
        return payload[0] + payload[1]
"""


async def test_app_from_the_current_directory_and_from_app_dir(
    tmp_path: Path, connect: Connect
) -> None:
    """As uvicorn does: the installed ``wsfleet`` script imports app.py from where it runs."""
    (tmp_path / "app.py").write_text(APP)
    script = [str(Path(sys.executable).with_name("wsfleet"))]
    env = {"PYTHONPATH": ""}
    for cwd, extra in ((tmp_path, []), (tmp_path.parent, ["--app-dir", str(tmp_path)])):
        node = await start_node(["--app", "app:setup", *extra], env=env, cwd=cwd, command=script)
        try:
            client = await connect(node.url(query="id=a"))
            await client.send('{"event":"add","payload":[2,3],"callbackId":"s"}')
            assert await client.recv() == '{"payload":5,"callbackId":"s"}'
        finally:
            await node.stop()
    result = subprocess.run(
        [*script, "serve", "--app", "app:setup", "--port", "0", "--internal-port", "off"],
        cwd=tmp_path.parent,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"wsfleet: configuration error: cannot import the app module 'app' from "
        f"{tmp_path.parent}: No module named 'app' (--app-dir names the folder that holds it)"
    )


async def test_internal_port_off_on_the_command_line() -> None:
    node = await start_node(["--internal-port", "off"])
    try:
        assert node.internal_port is None
        assert not any(b"internal port" in line for line in node.output)
    finally:
        await node.stop()


NETNS_DRIVER = """
import json, subprocess, sys, re, time, urllib.request, urllib.error
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
proc = subprocess.Popen(
    [sys.executable, "-m", "wsfleet", "serve", "--port", "0", "--internal-port", "0",
     "--redis", "notahost:6379", "--server-name", "n1"],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
)
lines = []
try:
    for line in proc.stdout:
        lines.append(line)
        if "does not resolve" in line:
            break
    found = re.compile(r"internal port on http://[\\d.]+:(\\d+)").search
    port = next(int(m.group(1)) for m in map(found, lines) if m)
    deadline = time.monotonic() + 20
    while True:  # the reason is the link's last error: a slow lookup may first be a timeout
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
            ready = {"status": 200}
        except urllib.error.HTTPError as exc:
            ready = {"status": exc.code, **json.loads(exc.read())}
            exc.close()
        if "does not resolve" in json.dumps(ready) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print(json.dumps({"lines": lines, "readyz": ready}))
finally:
    proc.kill()
    proc.wait(10)
"""


def test_an_unresolvable_redis_host_is_logged_and_explains_readyz() -> None:
    """Run in a network namespace of our own (loopback only): no DNS query leaves the box."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -rn (user + network namespace) is not available")
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", NETNS_DRIVER],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    logged = [line for line in report["lines"] if "does not resolve" in line]
    said = "WARNING [n1] wsfleet.bus: Redis redis://notahost:6379/0: host name does not resolve ("
    assert logged and said in logged[0]
    assert report["readyz"]["status"] == 503
    assert any(
        reason.startswith("Redis redis://notahost:6379/0: host name does not resolve (")
        for reason in report["readyz"]["reasons"]
    ), report["readyz"]
