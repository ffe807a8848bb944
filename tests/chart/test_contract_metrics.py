"""The metric names the dashboards and alerts rely on exist, with their types, on a real node run
with the pod command line of the contract (fleet mode, a real redis-server, the Redis list in a
watched directory as the mounted ConfigMap gives it)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.chart import contract
from tests.redis_procs import RedisProcess, free_port

WSFLEET = Path(sys.executable).parent / "wsfleet"
TYPE_LINE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)


def expected_types() -> dict[str, str]:
    types = {m: "gauge" for m in contract.GAUGES}
    types |= {m: "counter" for m in contract.COUNTERS}
    types |= {m: "histogram" for m in contract.HISTOGRAMS}
    return types


@pytest.mark.integration
async def test_a_fleet_node_exports_every_contract_metric(
    redis: RedisProcess, tmp_path: Path
) -> None:
    config_dir = tmp_path / "redis-nodes"
    config_dir.mkdir()
    (config_dir / "redis").write_text(f"redis://127.0.0.1:{redis.port}/0\n")
    port, internal = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        str(WSFLEET),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--internal-host",
        "127.0.0.1",
        "--internal-port",
        str(internal),
        "--config-dir",
        str(config_dir),
        env={"PATH": str(WSFLEET.parent), "POD_NAME": "chat-0", "WSFLEET_LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            # Ready in fleet mode = the bus probe went through Redis: every family is registered.
            async with asyncio.timeout(30):
                while True:
                    assert proc.returncode is None, "the node exited"
                    try:
                        async with session.get(f"http://127.0.0.1:{internal}/readyz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.05)
            async with session.get(f"http://127.0.0.1:{internal}/metrics") as resp:
                text = await resp.text()
        exported = dict(TYPE_LINE.findall(text))
        # prometheus_client may name a counter family without its _total suffix
        exported |= {f"{n}_total": t for n, t in exported.items() if t == "counter"}
        missing = {m: t for m, t in expected_types().items() if exported.get(m) != t}
        assert not missing, f"not exported with the contract's type: {missing}"
        assert 'wsfleet_redis_node_up{redis="127.0.0.1:' in text
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
