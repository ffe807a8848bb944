"""The package a user installs: ``python -m build`` makes a wheel and an sdist without warnings,
and the wheel, installed into a clean virtualenv (nothing from this checkout on the path), runs
``wsfleet serve`` as a two-node fleet on a real redis-server and its Python client talks to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.procs import start_node

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]

CLIENT = """
import asyncio, sys
from wsfleet.client import Connector

async def main() -> None:
    async with Connector(sys.argv[1], custom_params={"id": "alice"}) as alice, Connector(
        sys.argv[2], custom_params={"id": "bob"}
    ) as bob:
        await alice.wait_open(timeout=10)
        await bob.wait_open(timeout=10)
        heard: asyncio.Queue = asyncio.Queue()
        alice.on_event("said", heard.put_nowait)
        await alice.emit_with_ack("join", {"room": "lobby"}, timeout=5)
        await bob.emit_with_ack("join", {"room": "lobby"}, timeout=5)
        async with asyncio.timeout(20):
            while True:  # until alice's node listens on the room's channel
                await bob.emit_with_ack("say", {"room": "lobby", "text": "hi"}, timeout=5)
                try:
                    said = await asyncio.wait_for(heard.get(), 0.5)
                    break
                except TimeoutError:
                    continue
        print(said["name"], said["text"])

asyncio.run(main())
"""


@dataclass
class Installed:
    venv: Path
    work: Path
    build_output: str
    dist: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def wsfleet(self) -> str:
        return str(self.venv / "bin" / "wsfleet")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["PYTHONPATH"] = ""  # nothing from this checkout
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        return env


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=400, env=env, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    source.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            dst = source / name.decode()
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    bundle = ROOT / "service/wsfleet/demo/static/wsfleet-client.js"  # built, not tracked
    if bundle.is_file():
        (source / "service/wsfleet/demo/static/wsfleet-client.js").write_bytes(bundle.read_bytes())
    dist = work / "dist"
    # PYTHONDONTWRITEBYTECODE (set by some shells and CI) makes setuptools warn about itself
    build_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    output = _run(
        sys.executable, "-m", "build", "--outdir", str(dist), str(source), cwd=work, env=build_env
    )
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", str(venv), cwd=work)
    wheel = next(dist.glob("wsfleet-*.whl"))
    _run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), cwd=work)
    yield Installed(venv, work, output, dist)


def test_build_makes_a_wheel_and_an_sdist_without_warnings(installed: Installed) -> None:
    lowered = installed.build_output.lower()
    assert "warning" not in lowered and "deprecat" not in lowered, installed.build_output
    wheel = next(installed.dist.glob("wsfleet-*.whl"))
    sdist = next(installed.dist.glob("wsfleet-*.tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert "wsfleet/demo/static/index.html" in names
    assert "wsfleet/ops/static/fleet.html" in names  # the fleet view of the internal port
    text = metadata.decode()
    assert "License-Expression: MIT" in text
    for dependency in ("msgpack", "hiredis", "prometheus-client", "orjson", "aiohttp"):
        assert f"Requires-Dist: {dependency}" in text, dependency
    assert 'Requires-Dist: opentelemetry-sdk>=1.25; extra == "tracing"' in text
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("/LICENSE") for n in archive.getnames())


def test_installed_command_and_imports(installed: Installed) -> None:
    env = installed.env()
    helped = _run(installed.wsfleet, "--help", cwd=installed.work, env=env)
    assert "wsfleet serve" in helped
    imported = _run(
        installed.python,
        "-c",
        "import wsfleet, wsfleet.server, wsfleet.client; from wsfleet.server import Server; "
        "print(wsfleet.__file__)",
        cwd=installed.work,
        env=env,
    )
    assert str(installed.venv) in imported  # the installed copy, not this checkout


def test_a_missing_extra_is_one_sentence(installed: Installed) -> None:
    result = subprocess.run(
        [installed.wsfleet, "serve", "--port", "0", "--internal-port", "off"],
        cwd=installed.work,
        capture_output=True,
        text=True,
        timeout=60,
        env={**installed.env(), "OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "wsfleet: configuration error: tracing export needs OpenTelemetry, which is not "
        "installed: pip install 'wsfleet[tracing]' (or unset OTEL_TRACES_EXPORTER and "
        "OTEL_EXPORTER_OTLP_ENDPOINT to run without tracing)"
    )
    in_code = subprocess.run(
        [installed.python, "-c", "from wsfleet.server import Server; Server().enable_tracing()"],
        cwd=installed.work,
        capture_output=True,
        text=True,
        timeout=60,
        env=installed.env(),
    )
    assert in_code.returncode == 1
    assert in_code.stderr.strip().endswith(
        "ImportError: wsfleet tracing needs OpenTelemetry, which is not installed: "
        "pip install 'wsfleet[tracing]'"
    )
    operator = subprocess.run(
        [installed.python, "-m", "wsfleet_operator"],
        cwd=installed.work,
        capture_output=True,
        text=True,
        timeout=60,
        env=installed.env(),
    )
    assert operator.returncode == 1
    assert operator.stderr.strip() == (
        "wsfleet-operator: the operator needs kopf, which is not installed: "
        "pip install 'wsfleet[operator]'"
    )


async def test_two_node_fleet_and_the_client_from_the_wheel(
    installed: Installed, redis: Any
) -> None:
    command = [installed.wsfleet]
    nodes = []
    try:
        for name in ("pkg-a", "pkg-b"):
            nodes.append(
                await start_node(
                    ["--redis", redis.address, "--server-name", name],
                    env=installed.env(),
                    cwd=installed.work,
                    command=command,
                )
            )
        script = installed.work / "client.py"
        script.write_text(CLIENT)
        result = subprocess.run(
            [installed.python, str(script), nodes[0].url(), nodes[1].url()],
            cwd=installed.work,
            capture_output=True,
            text=True,
            timeout=60,
            env=installed.env(),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "bob hi"
    finally:
        for node in nodes:
            await node.stop()
