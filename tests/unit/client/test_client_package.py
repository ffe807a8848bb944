"""The client package's shape: one aiohttp importer, a curated public API."""

from __future__ import annotations

import ast
from pathlib import Path

import wsfleet
import wsfleet.client

CLIENT = Path(wsfleet.client.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_transport_module_imports_aiohttp() -> None:
    importers = {
        path.name
        for path in CLIENT.glob("*.py")
        if any(name.split(".")[0] in {"aiohttp", "yarl"} for name in imported_modules(path))
    }
    assert importers == {"_transport.py"}


def test_the_client_never_imports_the_server() -> None:
    for path in CLIENT.glob("*.py"):
        assert not any(n.startswith("wsfleet.server") for n in imported_modules(path)), path


def test_public_names_exist_and_are_exported_lazily_from_wsfleet() -> None:
    for name in wsfleet.client.__all__:
        assert hasattr(wsfleet.client, name), name
    assert wsfleet.Connector is wsfleet.client.Connector


def test_modules_stay_small() -> None:
    for path in CLIENT.glob("*.py"):
        assert len(path.read_text().splitlines()) < 800, path
