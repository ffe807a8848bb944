"""The internal port on several addresses (issue 11 item 7): one listener per address of
``--internal-host``, none on any other address."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest
from tests.procs import start_node

pytestmark = pytest.mark.integration


async def _refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_the_internal_port_listens_on_each_listed_address_and_nowhere_else() -> None:
    node = await start_node(["--internal-host", "127.0.0.2,127.0.0.3"])
    try:
        port = node.internal_port
        assert port is not None
        banner = b"".join(node.output).decode()
        assert f"internal port on http://127.0.0.2:{port}, http://127.0.0.3:{port} " in banner
        async with aiohttp.ClientSession() as session:
            for host in ("127.0.0.2", "127.0.0.3"):
                async with session.get(f"http://{host}:{port}/healthz") as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"status": "ok"}
        assert await _refused("127.0.0.1", port)
        assert await _refused("127.0.0.4", port)
    finally:
        assert await node.stop() == 0


def _config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsfleet", "config", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_config_print_shows_every_internal_address() -> None:
    result = _config("--print", "--internal-host", "10.0.0.7, 127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert 'internal_host = ["10.0.0.7", "127.0.0.1"]  # flag --internal-host' in (
        result.stdout.splitlines()
    )


def test_an_unexpanded_pod_ip_reference_is_one_clear_sentence() -> None:
    result = _config(env={"WSFLEET_INTERNAL_HOST": "$(POD_IP),127.0.0.1", "PATH": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "wsfleet: configuration error: internal_host must list IP addresses or host names, "
        "got '$(POD_IP)' (a Kubernetes reference left unexpanded: define POD_IP earlier in env) "
        "(from env WSFLEET_INTERNAL_HOST)"
    )


def test_an_address_not_on_this_machine_stops_the_node_with_one_sentence() -> None:
    serve = [sys.executable, "-m", "wsfleet", "serve", "--port", "0", "--internal-port", "0"]
    result = subprocess.run(
        [*serve, "--internal-host", "127.0.0.1,192.0.2.1"],  # 192.0.2.0/24: documentation only
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("wsfleet: cannot start: cannot open the internal port on 192.0.2.1:")
    assert message.endswith(
        "(Cannot assign requested address); list this machine's addresses in --internal-host "
        "or pass --internal-port off"
    )
