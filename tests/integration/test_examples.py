"""The examples run exactly as their READMEs say, and show what the READMEs promise."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from tests.procs import LISTENING

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def run_client(*args: str, timeout: float = 30) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "client.py",
        *args,
        cwd=EXAMPLES / "single-server",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_single_server_example() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "server.py",
        "--port",
        "0",
        "--broadcast-every",
        "0.3",
        "--room-every",
        "0.2",
        cwd=EXAMPLES / "single-server",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert server.stdout is not None
    try:
        async with asyncio.timeout(20):
            while not (match := LISTENING.search(await server.stdout.readline())):
                pass
        port = match.group(1).decode()
        out = await run_client("--port", port, "--id", "16", "--scale", "0.2", "--run-for", "2")
        lines = out.splitlines()
        assert lines[:2] == [f"Using configured values - port: {port}, id: 16", "Connect success"]
        assert (
            "Received promise response: {'success': True, 'data': "
            "{'msg': 'I am a callback for your say event'}}"
        ) in lines
        assert "Received callback response: {'msg': 'I am a callback for your say event'}" in lines
        assert "JoinRoom Received callback response: {'msg': 'JoinRoom successfully'}" in lines
        assert (
            "Received serverSay event: {'msg': \"I'm sending this message to everyone\"}" in lines
        )
        joined = lines.index(
            "JoinRoom Received callback response: {'msg': 'JoinRoom successfully'}"
        )
        assert (
            "Received roomSay event: {'msg': 'This is a message sent to the test room'}"
            in (lines[joined:])
        )
        refused = await run_client("--port", port, "--id", "", "--run-for", "10")
        assert "onCode event: 4011 Auth failure" in refused
        assert "No reconnection." in refused and "Preparing for reconnection" not in refused
    finally:
        server.terminate()
        output = (await asyncio.wait_for(server.communicate(), 10))[0].decode()
    assert server.returncode == 0
    assert "The client's ID is: 16" in output
    assert "Received 'joinRoom' event from client 16" in output


async def _spawn(directory: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=EXAMPLES / directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_cross_server_example(redis) -> None:  # type: ignore[no-untyped-def]
    names = ["serverA", "serverB", "serverC", "serverD", "serverE"]
    servers = [
        await _spawn("cross-server", "cserver.py", "--name", n, "--redis", redis.address)
        for n in names
    ]
    try:
        for name, proc in zip(names, servers, strict=True):
            assert proc.stdout is not None
            async with asyncio.timeout(20):
                while (await proc.stdout.readline()).strip() != f"{name} ready".encode():
                    pass
        clash = await _spawn(
            "cross-server", "cserver.py", "--name", "serverA", "--redis", redis.address
        )
        clash_out = (await asyncio.wait_for(clash.communicate(), 20))[0].decode()
        assert clash.returncode != 0
        assert "another live node is already named 'serverA'" in clash_out
        sender = await _spawn(
            "cross-server", "sender.py", "--redis", redis.address, "--scale", "0.1"
        )
        out = (await asyncio.wait_for(sender.communicate(), 30))[0].decode()
        assert sender.returncode == 0, out
        lines = out.splitlines()
        remaining = [line for line in lines if line.startswith("Number of servers yet to respond")]
        assert remaining == [f"Number of servers yet to respond: {n}" for n in (2, 1, 0)]
        promise = next(line for line in lines if line.startswith("All expected nodes responded"))
        assert promise.count("'") == 6  # three server names
    finally:
        outputs = []
        for proc in servers:
            proc.terminate()
            outputs.append((await asyncio.wait_for(proc.communicate(), 10))[0].decode())
    for output in outputs:
        assert output.count('Received "say" event from another server') == 3, output


async def test_ws_cross_server_example(redis) -> None:  # type: ignore[no-untyped-def]
    import re

    servers, ports = [], []
    clients = boss = None
    try:
        for i in range(5):
            proc = await _spawn(
                "ws-cross-server",
                "wsserver.py",
                "--name",
                f"server{i}",
                "--port",
                "0",
                "--redis",
                redis.address,
            )
            assert proc.stdout is not None
            async with asyncio.timeout(20):
                while not (match := LISTENING.search(await proc.stdout.readline())):
                    pass
            servers.append(proc)
            ports.append(match.group(1).decode())
        clients = await _spawn(
            "ws-cross-server",
            "clients.py",
            "--ports",
            ",".join(ports),
            "--seed",
            "7",
            "--run-for",
            "60",
        )
        assert clients.stdout is not None
        lines: list[str] = []

        async def read_until(predicate) -> None:  # type: ignore[no-untyped-def]
            async with asyncio.timeout(30):
                while not predicate():
                    line = await clients.stdout.readline()  # type: ignore[union-attr]
                    assert line, "\n".join(lines)
                    lines.append(line.decode().rstrip())

        await read_until(
            lambda: (
                sum("Connect success" in x for x in lines) == 50
                and sum("joinRoom callback" in x for x in lines) == 10
            )
        )
        in_1000 = {
            int(m.group(1))
            for x in lines
            if "roomId:1000" in x and (m := re.match(r"\[Client (\d+),", x))
        }
        boss = await _spawn("ws-cross-server", "boss.py", "--port", ports[0], "--scale", "0.1")
        boss_out = (await asyncio.wait_for(boss.communicate(), 30))[0].decode()
        assert boss.returncode == 0, boss_out
        assert boss_out.count("Message sent successfully") == 4

        def received(action: str) -> set[int]:
            return {
                int(m.group(1))
                for x in lines
                if f"'action': '{action}'" in x and (m := re.match(r"\[Client (\d+),", x))
            }

        expected = {
            "broadcast": set(range(1, 51)),
            "toPlayer": {13},
            "toPlayers": {3, 10, 25, 37},
            "toRoom": in_1000,
        }
        await read_until(lambda: all(received(a) >= ids for a, ids in expected.items()))
        for action, ids in expected.items():
            assert received(action) == ids, action
        assert "Received say event: {'action': 'broadcast', 'msg': 'Hello every one'}" in boss_out
    finally:
        for proc in [clients, *servers]:  # clients first: servers then drain nobody
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.communicate(), 10)
