"""wsfleet: real-time WebSocket services across many servers.

The public entry points are :class:`wsfleet.Server` (a node) and :class:`wsfleet.Connector`
(the Python client). Both are imported lazily so that ``import wsfleet.protocol`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wsfleet.version import __version__

__all__ = [
    "MISSING",
    "Connector",
    "DuplicatePolicy",
    "Refuse",
    "Server",
    "ServerSettings",
    "Socket",
    "UpgradeRequest",
    "__version__",
]

if TYPE_CHECKING:
    from wsfleet.client import Connector
    from wsfleet.protocol import MISSING
    from wsfleet.server import (
        DuplicatePolicy,
        Refuse,
        Server,
        ServerSettings,
        Socket,
        UpgradeRequest,
    )

_LAZY = {
    "Connector": "wsfleet.client",
    "DuplicatePolicy": "wsfleet.server",
    "MISSING": "wsfleet.protocol",
    "Refuse": "wsfleet.server",
    "Server": "wsfleet.server",
    "ServerSettings": "wsfleet.server",
    "Socket": "wsfleet.server",
    "UpgradeRequest": "wsfleet.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wsfleet' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
