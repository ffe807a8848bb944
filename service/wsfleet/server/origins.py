"""Which web pages may open WebSocket connections: the ``Origin`` check before the upgrade.

Browsers send ``Origin`` with every WebSocket upgrade and let any page connect anywhere, so a
page on another site can open a connection with the visitor's cookies. ``allowed_origins``
lists who may: exact origins (``https://app.example.com``), ``same-origin`` (the page was served
by the host the upgrade is addressed to) or ``*``. Empty (the default): no check, as the original.
Requests without ``Origin`` (non-browser clients) are not affected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

SAME_ORIGIN = "same-origin"


def origin_allowed(headers: Mapping[str, str], allowed: Sequence[str]) -> bool:
    if not allowed:
        return True
    origin = headers.get("Origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    for entry in allowed:
        if entry == "*" or entry.lower().rstrip("/") == origin:
            return True
        if entry == SAME_ORIGIN and _same_origin(origin, headers.get("Host")):
            return True
    return False


def _same_origin(origin: str, host: str | None) -> bool:
    if not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = "443" if parts.scheme == "https" else "80"
    return _with_port(parts.netloc, default) == _with_port(host.strip().lower(), default)


def _with_port(netloc: str, default: str) -> str:
    if netloc.endswith("]") or ":" not in netloc.rsplit("]", 1)[-1]:
        return f"{netloc}:{default}"
    return netloc
