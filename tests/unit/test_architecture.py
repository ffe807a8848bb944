"""Architecture boundaries, checked on the source: which module may import what, no import
cycles, and no reaching into another module's private attributes."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
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
        "wsfleet.server.hub",
        "wsfleet.server.dispatch",
        "wsfleet.server.ports",
        "wsfleet.server.state",
        "wsfleet.server.errors",
        "wsfleet.server.socket",
        "wsfleet.server.rooms",
        "wsfleet.server.settings",
        "wsfleet.server.cross",
        "wsfleet.server.fleet",
        "wsfleet.server.fleet_inbound",
        "wsfleet.server.fleet_control",
        "wsfleet.listeners",
        "wsfleet.tasks",
    }
    for mod in core:
        assert not any(n.split(".")[0] == "aiohttp" for n in modules()[mod]), mod


def test_aiohttp_internals_stay_in_the_checked_hook() -> None:
    """Only ``ws_hook`` (verified at start-up, with a public fallback) and the transport that
    uses it import ``aiohttp.web_ws`` or ``aiohttp._websocket``."""
    users = importers("aiohttp.web_ws") | importers("aiohttp._websocket")
    assert users <= {"wsfleet.server.ws_hook"}, users


# -- the import graph -------------------------------------------------------------------------


@cache
def module_paths() -> dict[str, Path]:
    result = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
        result[".".join(parts)] = path
    return result


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def internal_edges(module: str) -> set[str]:
    """wsfleet modules that ``module`` imports anywhere in its source: at the top, inside
    functions and under ``if TYPE_CHECKING`` alike (each is an edge a cycle can run through)."""
    known = module_paths()
    path = known[module]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            # ``from pkg import mod`` imports the module; ``from mod import name`` the module
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        edges.update(t for t in targets if t in known and t != module)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the path of modules around it; None without one."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(mod: str) -> list[str] | None:
        state[mod] = 1
        path.append(mod)
        for nxt in sorted(graph.get(mod, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[mod] = 2
        return None

    for mod in sorted(graph):
        if mod not in state:
            found = visit(mod)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_inside_the_package() -> None:
    graph = {mod: internal_edges(mod) for mod in module_paths()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_node_is_composed_not_inherited() -> None:
    """``Server`` is a facade over its parts, not a chain of mixins."""
    tree = ast.parse(module_paths()["wsfleet.server.server"].read_text())
    server = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Server")
    assert server.bases == []


# -- private attributes -----------------------------------------------------------------------

#: ``obj._name`` reads of third-party privates, each with the reason it is allowed.
PRIVATE_ALLOWLIST: dict[tuple[str, str], str] = {}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_names(tree: ast.AST) -> set[str]:
    """Every private name a module defines: functions, classes, assignments (also to
    ``self.x``/``cls.x``), ``__slots__`` entries, parameters and imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries and the like
    return {n for n in names if _is_private(n)}


def private_reaches(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line, receiver, attribute)`` of every ``x._name`` where ``x`` is not ``self``/``cls``
    and ``_name`` is not defined in the same module."""
    tree = ast.parse(path.read_text(), str(path))
    own = defined_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        receiver = ast.unparse(node.value)
        if receiver in ("self", "cls") or node.attr in own:
            continue
        yield node.lineno, receiver, node.attr


def test_the_private_attribute_check_sees_a_reach(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "class A:\n"
        "    def __init__(self, other):\n"
        "        self._mine = other._mine\n"  # defined here: allowed
        "        self.server = other\n"
        "    def f(self):\n"
        "        return self.server._sockets, self._mine, self.__class__\n"
    )
    assert list(private_reaches(source)) == [(6, "self.server", "_sockets")]


def test_no_module_reads_another_modules_private_attributes() -> None:
    found = []
    for mod, path in sorted(module_paths().items()):
        for line, receiver, attr in private_reaches(path):
            if (mod, attr) not in PRIVATE_ALLOWLIST:
                found.append(f"{mod}:{line}: {receiver}.{attr}")
    assert not found, "\n".join(found)
