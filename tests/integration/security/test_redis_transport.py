"""TLS and ACL users on the node's Redis links, against real redis-servers: what works, and every
failure shown with its real cause in the node's readiness reasons."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import FAST, MakeFleet, join
from tests.redis_procs import REDIS, RedisProcess, free_port

from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.bus.tls import connect_error
from wsfleet.ops.internal_http import readiness
from wsfleet.server import Server

pytestmark = pytest.mark.integration


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(cwd: Path, name: str, ca: str, subject: str, ext: str | None = None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", subject, cwd=cwd)  # fmt: skip
    extra = ["-extfile", ext] if ext else []
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra, cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA with a server certificate for 127.0.0.1 and a client certificate, and a second
    CA that signed nothing here."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command", pytrace=False)
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
                 f"{ca}.crt", "-days", "1", "-subj", f"/CN=wsfleet test {ca}", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _issue(d, "server", "ca", "/CN=localhost", "san.ext")
    _issue(d, "client", "ca", "/CN=wsfleet-node")
    return Pki(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
        d / "other.crt",
    )  # fmt: skip


@dataclass
class TlsRedis:
    port: int
    proc: asyncio.subprocess.Process

    @property
    def address(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


@pytest.fixture
async def tls_redis(pki: Pki, tmp_path: Path) -> AsyncIterator[TlsRedis]:
    """A redis-server with TLS only (``--port 0``) that requires client certificates."""
    assert REDIS is not None
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        REDIS, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
        "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--loglevel", "warning",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    async with asyncio.timeout(10):
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.write(b"PING\r\n")
            ok = (await reader.readline()).startswith(b"+PONG")
            writer.close()
            if ok:
                break
    yield TlsRedis(port, proc)
    proc.kill()
    await proc.wait()


StartBus = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_bus() -> AsyncIterator[StartBus]:
    """A node whose bus runs but which never accepts connections: its readiness reasons."""
    started: list[Server] = []

    async def start(address: str, **fleet: Any) -> Server:
        server = Server(fleet=FleetSettings(redis=(RedisNode.parse(address),), **FAST, **fleet))
        assert server.fleet is not None
        await server.fleet.bus.start()
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.fleet is not None
        await server.fleet.bus.aclose()


async def reason_mentions(server: Server, *words: str) -> str:
    async with asyncio.timeout(10):
        while True:
            for reason in readiness(server):
                if all(word in reason for word in words):
                    return reason
            await asyncio.sleep(0.02)


async def test_a_fleet_over_tls_with_a_test_ca_and_client_certificates(
    pki: Pki, tls_redis: TlsRedis, make_fleet: MakeFleet, connect: Connect
) -> None:
    tls = {
        "redis_tls_ca_file": pki.ca,
        "redis_tls_cert_file": pki.client_cert,
        "redis_tls_key_file": pki.client_key,
    }
    a, b = await make_fleet([tls_redis], 2, **tls)
    client = await join(connect, b, "over-tls")
    a.server.broadcast("news", "encrypted")
    assert await client.recv() == '{"event":"news","payload":"encrypted"}'
    await wait_until(lambda: readiness(a.server) == [], 10)  # the probe's round trip, over TLS


async def test_tls_failures_show_their_cause(
    pki: Pki, tls_redis: TlsRedis, start_bus: StartBus
) -> None:
    client = {"redis_tls_cert_file": pki.client_cert, "redis_tls_key_file": pki.client_key}
    untrusted = await start_bus(tls_redis.address, redis_tls_ca_file=pki.other_ca, **client)
    reason = await reason_mentions(untrusted, "TLS certificate not trusted", str(tls_redis.port))
    assert "certificate" in reason.split("not trusted", 1)[1]  # OpenSSL's own words follow
    unverified = await start_bus(tls_redis.address, redis_tls_verify=False, **client)
    assert unverified.fleet is not None
    await unverified.fleet.bus.wait_ready(10)


async def test_acl_users_work_and_each_failure_names_its_cause(
    redis: RedisProcess, start_bus: StartBus, tmp_path: Path
) -> None:
    acl = ["ACL", "SETUSER"]
    assert await redis.command(*acl, "app", "on", ">app-secret", "~csbp:*", "&csbp:*", "&ws:*",
                               "+@all") == b"+OK"  # fmt: skip
    assert await redis.command(*acl, "nochan", "on", ">nochan-secret", "~csbp:*", "&csbp:*",
                               "+@all") == b"+OK"  # fmt: skip
    password = tmp_path / "app-password"
    password.write_text("app-secret\n")
    url = f"redis://{{}}127.0.0.1:{redis.port}/0"
    good = await start_bus(url.format("app@") + f"?password_file={password}")
    assert good.fleet is not None
    await good.fleet.bus.wait_ready(10)
    wrong = await start_bus(url.format("app:wrong@"))
    assert "WRONGPASS" in await reason_mentions(wrong, "AUTH as user 'app' refused")
    limited = await start_bus(url.format("nochan:nochan-secret@"))
    reason = await reason_mentions(limited, "subscribe refused", "NOPERM")
    assert "no permissions to access one of the channels" in reason
    assert "nochan-secret" not in reason and "wrong" not in await reason_mentions(wrong, "AUTH")


def test_a_name_that_does_not_resolve_is_said_so() -> None:
    error = connect_error("redis://redis.example:6379/0", socket.gaierror(-2, "Name unknown"))
    assert str(error) == "redis://redis.example:6379/0: host name does not resolve (Name unknown)"
