"""Addresses of Redis' own distributed modes, as one broker node of the bus.

- ``redis+cluster://[user:pass@]host:port[?seed=host:port...]``: a Redis Cluster (7.0+), reached
  through any of its nodes; the bus sees it as one link (:mod:`wsfleet.bus.cluster_link`) that
  publishes with ``SPUBLISH`` and subscribes with ``SSUBSCRIBE`` on the shard owning each channel.
- ``redis+sentinel://[user:pass@]host:port/<master name>[?seed=host:port...]``: the master that
  the Sentinels at those addresses name (:mod:`wsfleet.bus.sentinel`), followed across failovers.

``rediss+`` instead of ``redis+`` turns TLS on; ``?password_file=PATH`` reads the password from
a file. The address list is given with ``seed`` because fleet settings split node lists on commas.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Final, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit


class TopologyAddress(Protocol):
    """What :class:`wsfleet.bus.nodes.RedisNode` holds for these modes."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def seeds(self) -> tuple[tuple[str, int], ...]: ...
    @property
    def service(self) -> str | None: ...


TOPOLOGY_SCHEMES: Final = (
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
)

N = TypeVar("N")


def _address(text: str, item: str) -> tuple[str, int]:
    host, sep, port_text = item.strip().rpartition(":")
    if not sep:
        host, port_text = item.strip(), "6379"
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"Redis address {text!r}: {item!r} is not host:port")
    return host, int(port_text)


MISSING_EXTRA: Final = (
    "Redis Cluster and Sentinel addresses need redis-py, which is not installed: "
    "pip install 'wsfleet[cluster]'"
)


def parse_topology(
    cls: Callable[..., N], text: str, value: str, read_password: Callable[[str, str], str]
) -> N:
    if importlib.util.find_spec("redis") is None:
        raise ValueError(f"Redis address {text!r}: {MISSING_EXTRA}")
    scheme, _, rest = value.partition("://")
    base, _, mode = scheme.partition("+")
    parts = urlsplit("redis://" + rest)
    if not parts.hostname:
        raise ValueError(f"Redis address {text!r} has no host")
    try:
        port = parts.port or (26379 if mode == "sentinel" else 6379)
    except ValueError:
        raise ValueError(f"Redis address {text!r} has an invalid port") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"seed", "password_file"})
    if unknown:
        raise ValueError(f"Redis address {text!r}: unknown option(s) {', '.join(unknown)}")
    seeds = tuple(_address(text, s) for s in query.get("seed", []))
    service: str | None = None
    if mode == "sentinel":
        service = unquote(parts.path.strip("/"))
        if not service or "/" in service:
            raise ValueError(f"Sentinel address {text!r}: name the master, as host:port/<name>")
    elif parts.path.strip("/"):
        raise ValueError(f"Cluster address {text!r}: a cluster has no database number")
    password = unquote(parts.password) if parts.password else None
    if "password_file" in query:
        password = read_password(text, query["password_file"][-1])
    return cls(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=password,
        tls=base == "rediss",
        mode=mode,
        seeds=seeds,
        service=service,
    )


def topology_key(node: TopologyAddress) -> str:
    """``cluster://host:port,...`` or ``sentinel://host:port,.../<name>`` (no credentials)."""
    addresses = ",".join(f"{h}:{p}" for h, p in ((node.host, node.port), *node.seeds))
    tail = f"/{node.service}" if node.service else ""
    return f"{node.mode}://{addresses}{tail}"


def addresses(node: TopologyAddress) -> list[tuple[str, int]]:
    return [(node.host, node.port), *node.seeds]
