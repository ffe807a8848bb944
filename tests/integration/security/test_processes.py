"""Real ``wsfleet serve`` processes: the bus key comes from a file or the environment (never a
flag), the mode is on /cluster and /metrics, and the secret never shows in ``ps`` or logs."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from tests.conftest import Connect
from tests.procs import NodeProcess, start_node
from tests.redis_procs import RedisProcess

pytestmark = pytest.mark.integration

SECRET = "S" * 44


async def get(url: str) -> tuple[str, dict[str, object] | None]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
        return text, (await response.json() if "json" in response.content_type else None)


async def test_signed_nodes_from_a_key_file_and_the_environment(
    redis: RedisProcess, connect: Connect, tmp_path: Path
) -> None:
    keys = tmp_path / "bus-keys"
    keys.write_text(f"k1:{SECRET}\n")
    common = ["--redis", redis.address, "--fleet", "prod.chat"]
    procs: list[NodeProcess] = []
    try:
        procs.append(
            await start_node([*common, "--server-name", "p1", "--bus-key-file", str(keys)])
        )
        procs.append(
            await start_node(
                [*common, "--server-name", "p2"], env={"WSFLEET_BUS_KEYS": f"k1:{SECRET}"}
            )
        )
        client = await connect(procs[1].url(query="id=c2"))
        sender = await connect(procs[0].url(query="id=c1"))
        await sender.send('{"event":"broadcast","payload":"signed","callbackId":"b"}')
        frame = await client.recv()
        assert "announcement" in frame and "signed" in frame, frame
        for proc in procs:
            _, cluster = await get(proc.internal_url + "/cluster")
            assert cluster is not None
            auth = cluster["busAuth"]
            assert isinstance(auth, dict) and auth["mode"] == "signed"
            metrics, _ = await get(proc.internal_url + "/metrics")
            assert 'wsfleet_bus_auth_mode{mode="signed"} 1.0' in metrics
            assert SECRET not in metrics and SECRET not in str(cluster)
            cmdline = Path(f"/proc/{proc.proc.pid}/cmdline").read_bytes()
            assert SECRET.encode() not in cmdline
    finally:
        for proc in procs:
            await proc.stop()
        for proc in procs:
            logs = b"".join(proc.output).decode()
            assert "signed with key k1" in logs and SECRET not in logs
