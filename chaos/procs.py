"""Processes the scenarios start and stop, each by its own pid: redis-server and wsfleet nodes."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(rb"listening on http://[\d.]+:(\d+)")
INTERNAL = re.compile(rb"internal port on http://[\d.]+:(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (``VmRSS``), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Redis:
    port: int = field(default_factory=free_port)
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="wsfleet-chaos-"))
    proc: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (make system-deps installs it)")
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", self.workdir, "--loglevel", "warning"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            while await self.command("PING") != b"+PONG":  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.02)

    async def command(self, *args: str | bytes) -> bytes:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return b""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        writer.write(b"".join(parts))
        try:
            line = await reader.readline()
        finally:
            writer.close()
        return line.rstrip()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        await self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Node:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    internal_port: int = 0
    output: list[bytes] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, socket_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?id={socket_id}"

    @property
    def internal(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    async def start(self, timeout: float = 20.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "wsfleet", "serve", "--host", "127.0.0.1", "--port", "0"),
            *("--internal-port", "0", "--server-name", self.name, *self.args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while not self.port:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{self.name} exited:\n" + b"".join(self.output).decode())
                self.output.append(line)
                if m := INTERNAL.search(line):
                    self.internal_port = int(m.group(1))
                if m := LISTENING.search(line):
                    self.port = int(m.group(1))
        self._reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line)
            del self.output[:-2000]  # the last lines are enough to explain a failure

    def log_count(self, text: bytes) -> int:
        return sum(text in line for line in self.output)

    async def kill(self) -> None:
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        await self._end(signal.SIGTERM)

    async def _end(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                async with asyncio.timeout(15):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self.port = 0


def node_args(redis: Sequence[Redis], *extra: str) -> list[str]:
    return ["--redis", ",".join(r.address for r in redis), *extra]
