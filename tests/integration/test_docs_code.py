"""Every Python code block of the README and docs/*.md runs as written.

A block right under the line ``<!-- fragment -->`` is a fragment (it names things defined
elsewhere): it is only compiled. Every other block is saved as a script and run:

- a block that calls ``.run(`` (not ``asyncio.run(``) is a server: it must print where it
  listens; the blocks after it in the same file run against it (the README's client talks to
  the README's server);
- any other block runs against a demo node (``wsfleet serve``) and must exit 0.

Port 9000 in a block is replaced by the port of the node it talks to (tests never bind 9000).
Every block runs with ``APP_TOKEN_KEYS`` set, as the README tells the reader to.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.procs import LISTENING, NodeProcess, start_node

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment -->"
ENV = {**os.environ, "APP_TOKEN_KEYS": "k1:" + os.urandom(16).hex()}
FENCE = re.compile(r"^```python\s*$")
SERVES = re.compile(r"(?<!asyncio)\.run\(")


@dataclass
class Block:
    path: Path
    line: int
    code: str
    fragment: bool

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def serves(self) -> bool:
        return SERVES.search(self.code) is not None


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found = []
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            start = i
            i += 1
            body = []
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            fragment = start > 0 and lines[start - 1].strip() == FRAGMENT
            found.append(Block(path, start + 1, "\n".join(body) + "\n", fragment))
        i += 1
    return found


ALL = [b for path in DOCS for b in blocks(path)]


def test_the_docs_have_python_blocks_and_runnable_ones() -> None:
    assert len(ALL) >= 10
    assert sum(not b.fragment for b in ALL) >= 4


@pytest.mark.parametrize("block", [b for b in ALL if b.fragment], ids=lambda b: b.name)
def test_fragments_compile(block: Block) -> None:
    compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def run_script(path: Path, code: str, port: int) -> tuple[int, str]:
    path.write_text(code.replace("9000", str(port)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=path.parent,
        env=ENV,
    )
    try:
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def start_script_server(path: Path, code: str, port: int) -> asyncio.subprocess.Process:
    path.write_text(code.replace("9000", str(port)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=path.parent,
        env=ENV,
    )
    assert proc.stdout is not None
    seen = b""
    try:
        async with asyncio.timeout(20):
            while not LISTENING.search(seen):
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"{path.name} exited without saying where it listens")
                seen += line
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert f"listening on http://127.0.0.1:{port}".encode() in seen
    return proc


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
async def test_runnable_blocks_run(path: Path, tmp_path: Path) -> None:
    runnable = [b for b in blocks(path) if not b.fragment]
    if not runnable:
        pytest.skip("no runnable Python block")
    from tests.redis_procs import free_port

    demo: NodeProcess | None = None
    server: asyncio.subprocess.Process | None = None
    try:
        port: int | None = None
        for index, block in enumerate(runnable):
            script = tmp_path / f"block{index}.py"
            if block.serves:
                if server is not None:
                    server.terminate()
                    await server.wait()
                port = free_port()
                server = await start_script_server(script, block.code, port)
                continue
            if port is None:
                demo = await start_node(["--internal-port", "off"])
                port = demo.port
            code, out = await run_script(script, block.code, port)
            assert code == 0, f"{block.name} failed:\n{out}"
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            await server.wait()
        if demo is not None:
            await demo.stop()


async def test_the_readme_client_gets_the_quickstart_servers_ack(tmp_path: Path) -> None:
    from tests.redis_procs import free_port

    server_block, client_block = [b for b in blocks(ROOT / "README.md") if not b.fragment][:2]
    assert server_block.serves
    port = free_port()
    server = await start_script_server(tmp_path / "app.py", server_block.code, port)
    try:
        code, out = await run_script(tmp_path / "client.py", client_block.code, port)
        assert code == 0, out
        assert out.strip() == "{'ok': True}"
    finally:
        server.terminate()
        await server.wait()
