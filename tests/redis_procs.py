"""Real ``redis-server`` processes on free loopback ports, killed and restarted by tests."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

REDIS = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_argv(exe: str, port: int, workdir: Path | str) -> list[str]:
    """A ``redis-server`` on ``127.0.0.1:port``: no persistence, in the foreground, quiet
    (shared with the benchmarks' fleet scenarios)."""
    return [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


@dataclass
class RedisProcess:
    port: int
    workdir: Path
    proc: asyncio.subprocess.Process | None = None
    stopped: bool = field(default=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        if REDIS is None:
            raise RuntimeError("redis-server is not installed: run 'make test' (it installs it)")
        self.proc = await asyncio.create_subprocess_exec(
            *server_argv(REDIS, self.port, self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self.wait_ping()

    async def wait_ping(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.write(b"PING\r\n")
                await writer.drain()
                line = await reader.readline()
                writer.close()
                if line.startswith(b"+PONG"):
                    return
                await asyncio.sleep(0.02)

    async def kill(self) -> None:
        """SIGKILL: the node vanishes without a goodbye, as in a crash."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    def pause(self) -> None:
        """SIGSTOP: the node keeps its sockets open but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    async def command(self, *args: str) -> bytes:
        """One raw command over a fresh connection (for test assertions)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        writer.write(b"".join(parts))
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return line.rstrip()

    async def numsub(self, channel: str) -> int:
        """How many connections are subscribed to ``channel`` on this Redis node."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = channel.encode()
        writer.write(b"*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$%d\r\n%s\r\n" % (len(data), data))
        await writer.drain()
        while True:
            line = await reader.readline()
            if line.startswith(b":"):
                writer.close()
                return int(line[1:])
