"""Architecture boundaries, checked on the source: which module may import what."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "wsfleet"


def imports_of(path: Path) -> set[str]:
    """Every module name a file imports, with ``from aiohttp import web`` as ``aiohttp.web``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules() -> dict[str, set[str]]:
    result = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        result[".".join(rel.parts)] = imports_of(path)
    return result


def importers(prefix: str) -> set[str]:
    return {
        mod
        for mod, names in modules().items()
        if any(n == prefix or n.startswith(prefix + ".") for n in names)
    }


def test_only_the_two_http_adapters_import_aiohttp_web() -> None:
    # the WebSocket port and the internal (metrics/health) port
    assert importers("aiohttp.web") <= {"wsfleet.server.transport", "wsfleet.ops.internal_http"}


def test_prometheus_and_opentelemetry_stay_out_of_the_core() -> None:
    assert importers("prometheus_client") <= {"wsfleet.ops.metrics", "wsfleet.ops.internal_http"}
    assert importers("opentelemetry") <= {"wsfleet.tracing", "wsfleet.ops.tracing"}


def test_layers_import_downwards_only() -> None:
    """protocol < bus < server < ops < cli: nothing imports a layer above its own."""
    order = ["wsfleet.protocol", "wsfleet.bus", "wsfleet.server", "wsfleet.ops", "wsfleet.cli"]

    def layer(name: str) -> int | None:
        for i, prefix in enumerate(order):
            if name == prefix or name.startswith(prefix + "."):
                return i
        return None

    for mod, names in modules().items():
        own = layer(mod)
        if own is None:
            continue
        for name in names:
            other = layer(name)
            assert other is None or other <= own, f"{mod} imports {name} from a higher layer"


def test_at_most_one_module_imports_redis() -> None:
    assert len(importers("redis")) <= 1, importers("redis")


def test_protocol_is_sans_io() -> None:
    allowed_third_party = {"orjson"}
    for mod, names in modules().items():
        if not mod.startswith("wsfleet.protocol"):
            continue
        for name in names:
            top = name.split(".")[0]
            assert (
                top in allowed_third_party or top == "wsfleet" or top in sys.stdlib_module_names
            ), (
                mod,
                name,
            )
            if top == "wsfleet":
                assert name.startswith("wsfleet.protocol"), (mod, name)


def test_client_and_server_do_not_import_each_other() -> None:
    for mod, names in modules().items():
        if mod.startswith("wsfleet.client"):
            assert not any(n.startswith("wsfleet.server") for n in names), mod
        if mod.startswith("wsfleet.server"):
            assert not any(n.startswith("wsfleet.client") for n in names), mod


def test_the_server_core_does_not_touch_aiohttp() -> None:
    core = {
        "wsfleet.server.server",
        "wsfleet.server.socket",
        "wsfleet.server.rooms",
        "wsfleet.server.settings",
        "wsfleet.listeners",
    }
    for mod in core:
        assert not any(n.split(".")[0] == "aiohttp" for n in modules()[mod]), mod
