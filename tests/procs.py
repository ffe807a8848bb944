"""Start real ``wsfleet`` processes for tests and stop exactly those, by pid."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LISTENING = re.compile(rb"listening on http://[\d.]+:(\d+)")
INTERNAL = re.compile(rb"internal port on http://[\d.]+:(\d+)")


@dataclass
class NodeProcess:
    proc: asyncio.subprocess.Process
    port: int
    output: list[bytes] = field(default_factory=list)
    internal_port: int | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def internal_url(self) -> str:
        assert self.internal_port is not None, "this node has no internal port"
        return f"http://127.0.0.1:{self.internal_port}"

    def url(self, path: str = "/ws", query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the process and wait for its exit and its last output line."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.wait(timeout)

    async def wait(self, timeout: float = 10.0) -> int:
        """Wait for the exit and the last output line, without a signal (a second SIGTERM
        would end a drain at once)."""
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self.reader is not None:
                await self.reader
        return code


async def start_node(
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    *,
    cwd: str | os.PathLike[str] | None = None,
    command: Sequence[str] | None = None,
) -> NodeProcess:
    """Run ``python -m wsfleet serve --port 0 --internal-port 0 ARGS`` (or ``COMMAND serve …``,
    e.g. the installed ``wsfleet`` script) and wait for its "listening on" line (ARGS may
    override the internal port)."""
    proc = await asyncio.create_subprocess_exec(
        *(command or (sys.executable, "-m", "wsfleet")),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--internal-port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(
                        "wsfleet exited before listening:\n" + b"".join(lines).decode()
                    )
                lines.append(line)
                match = LISTENING.search(line)
                if match:
                    break
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    internal = next((m for m in map(INTERNAL.search, lines) if m), None)
    node = NodeProcess(
        proc, int(match.group(1)), lines, int(internal.group(1)) if internal else None
    )
    node.reader = asyncio.get_running_loop().create_task(_drain(node), name=f"drain-{proc.pid}")
    return node


async def _drain(node: NodeProcess) -> None:
    assert node.proc.stdout is not None
    while line := await node.proc.stdout.readline():
        node.output.append(line)
