"""Redis node addresses that arrive on the bus, and where their credentials come from.

Anyone who can publish on the fleet's Redis can put an address into a control message, so an
address from the bus names a place and nothing else: ``redis://host:port/db`` or
``rediss://host:port/db``. It never carries a user name, a password, a query (``password_file``
would make the node read a local file and send it to that host as ``AUTH``) or another scheme
(``memory://``): such an address is refused with :class:`BusAddressError` and counted.

Credentials come only from the node's own configuration, in this order:

1. the node's configured addresses (``--redis``, the watched ``config_dir`` list) with the same
   ``host:port/db``: their user name, password and TLS setting;
2. ``redis_secrets_dir``: a file named ``<host>_<port>`` (or ``<host>``) holding the password;
3. ``redis_password_file``: one password for every Redis node.

With 2. or 3., the ACL user is ``redis_username`` (or Redis' ``default`` user).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from wsfleet.bus.codec import BusDecodeError
from wsfleet.bus.nodes import RedisNode

_MAX_ADDRESS = 512


class BusAddressError(BusDecodeError):
    """An address in a control message that a node must not use as it stands."""


def parse_bus_address(value: object) -> RedisNode:
    """A credential-free :class:`RedisNode` from an address a control message carried."""
    if not isinstance(value, str) or not value or len(value) > _MAX_ADDRESS:
        raise BusAddressError("a bus address must be a non-empty string of at most 512 chars")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise BusAddressError("a bus address must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise BusAddressError(f"bus address {value!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise BusAddressError(f"bus address {value!r}: only redis:// and rediss:// are accepted")
    if "@" in parts.netloc:
        raise BusAddressError(
            f"bus address {_redacted(value)!r}: carries credentials (refused: they come only from "
            "this node's own configuration)"
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise BusAddressError(
            f"bus address {value!r}: options such as password_file are refused on the bus"
        )
    try:
        node = RedisNode.parse(value)
    except ValueError as exc:
        raise BusAddressError(str(exc)) from None
    if node.password is not None or node.username is not None or node.memory:
        raise BusAddressError(f"bus address {_redacted(value)!r} is refused")
    return node


def public_address(node: RedisNode) -> str:
    """What a node may say about a Redis node on the bus: scheme, host, port and db only."""
    scheme = "rediss" if node.tls else "redis"
    host = f"[{node.host}]" if ":" in node.host else node.host
    return f"{scheme}://{host}:{node.port}/{node.db}"


def _redacted(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep:
        return "***"
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


class Credentials:
    """Completes a bus address with credentials from this node's own configuration."""

    def __init__(
        self,
        known: Callable[[], Iterable[RedisNode]],
        *,
        password_file: Path | None = None,
        secrets_dir: Path | None = None,
        username: str | None = None,
    ) -> None:
        self._known = known
        self.username = username
        self.password_file = password_file
        self.secrets_dir = secrets_dir

    def complete(self, node: RedisNode) -> RedisNode:
        for configured in self._known():
            if configured.key == node.key and not configured.memory:
                return dataclasses.replace(
                    node,
                    username=configured.username,
                    password=configured.password,
                    tls=configured.tls or node.tls,  # the bus never downgrades TLS
                )
        password = self._from_secrets_dir(node) or _read(self.password_file)
        if not password:
            return node
        return dataclasses.replace(node, username=self.username, password=password)

    def _from_secrets_dir(self, node: RedisNode) -> str | None:
        if self.secrets_dir is None:
            return None
        for name in (f"{node.host}_{node.port}", node.host):
            if "/" in name or name.startswith("."):
                continue
            password = _read(self.secrets_dir / name)
            if password:
                return password
        return None


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().rstrip("\r\n") or None
    except OSError:
        return None


def trusted_nodes(
    action: str, args: dict[str, object], credentials: Credentials
) -> list[RedisNode]:
    """The Redis nodes a ``redis.set`` (``args.addresses``) or ``redis.add``/``redis.remove``
    (``args.address``) names, completed with this node's own credentials."""
    if action == "redis.set":
        addresses = args.get("addresses")
        if not isinstance(addresses, list) or not addresses or len(addresses) > 64:
            raise BusAddressError("redis.set needs 'addresses': a list of 1 to 64 addresses")
        raw: list[object] = list(addresses)
    else:
        raw = [args.get("address")]
    return [credentials.complete(parse_bus_address(value)) for value in raw]
