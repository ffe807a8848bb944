"""Addresses of broker nodes, parsed from ``host:port``, ``redis://`` / ``rediss://`` URLs or
``memory://<name>`` (a process-local :class:`~wsfleet.bus.memory.MemoryBroker`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from wsfleet.bus.topology_nodes import TOPOLOGY_SCHEMES, parse_topology, topology_key


@dataclass(frozen=True, slots=True)
class RedisNode:
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    memory: bool = False
    """A process-local in-memory broker named :attr:`host` (``memory://<name>``)."""
    mode: str = "node"
    """``node`` (one Redis), ``cluster`` (a Redis Cluster, ``redis+cluster://``) or
    ``sentinel`` (the master ``service`` named by Sentinels, ``redis+sentinel://``); see
    :mod:`wsfleet.bus.topology_nodes`."""
    seeds: tuple[tuple[str, int], ...] = ()
    """Further cluster nodes or Sentinels to ask (``?seed=host:port``), after host:port."""
    service: str | None = None
    """The Sentinel master name."""

    @property
    def key(self) -> str:
        """Stable identity of the node, used for routing and in metric labels."""
        if self.memory:
            return f"memory://{self.host}"
        if self.mode != "node":
            return topology_key(self)
        return f"{self.host}:{self.port}/{self.db}"

    def __str__(self) -> str:
        if self.memory or self.mode != "node":
            return self.key
        scheme = "rediss" if self.tls else "redis"
        auth = "***@" if self.password else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"

    @classmethod
    def parse(cls, text: str) -> RedisNode:
        """``host:port``, ``host``, ``redis://[user:pass@]host[:port][/db]`` or ``rediss://…``;
        ``?password_file=PATH`` reads the password from a file (a mounted Secret)."""
        value = text.strip()
        if not value:
            raise ValueError("empty Redis node address")
        if value.startswith("memory://"):
            name = value.removeprefix("memory://")
            if not name or any(c in name for c in "/?#@:"):
                raise ValueError(f"memory broker {text!r}: the name must be plain text")
            return cls(host=name, port=0, memory=True)
        if value.startswith(TOPOLOGY_SCHEMES):
            return parse_topology(cls, text, value, _read_password)
        if "://" not in value:
            value = "redis://" + value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(
                f"Redis node {text!r}: scheme must be redis://, rediss:// or memory://"
            )
        if not parts.hostname:
            raise ValueError(f"Redis node {text!r} has no host")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"Redis node {text!r} has an invalid port") from None
        db_text = parts.path.lstrip("/") or "0"
        if not db_text.isdigit():
            raise ValueError(f"Redis node {text!r}: database must be a number, got {db_text!r}")
        password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"password_file"})
        if unknown:
            raise ValueError(f"Redis node {text!r}: unknown option(s) {', '.join(unknown)}")
        if "password_file" in query:
            password = _read_password(text, query["password_file"][-1])
        return cls(
            host=parts.hostname,
            port=port,
            db=int(db_text),
            username=unquote(parts.username) if parts.username else None,
            password=password,
            tls=parts.scheme == "rediss",
        )


def _read_password(address: str, path: str) -> str:
    """The password in a file (a mounted Kubernetes Secret), without its trailing newline."""
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(
            f"Redis node {address!r}: cannot read password_file {path!r} ({exc.strerror or exc})"
        ) from None
