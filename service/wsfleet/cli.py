"""The ``wsfleet`` command line.

``wsfleet serve`` runs one node. Every field of :class:`ServerSettings` and :class:`FleetSettings`
is a flag (``--server-ping-interval 20``, ``--redis 127.0.0.1:6379``) and a ``WSFLEET_*``
environment variable (``WSFLEET_SERVER_PING_INTERVAL=20``); flags win over the environment.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import importlib
import inspect
import itertools
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

from wsfleet import __version__
from wsfleet.protocol.errors import WsfleetError

ENV_PREFIX = "WSFLEET_"


def _groups() -> list[tuple[str, type[Any]]]:
    from wsfleet.bus.settings import FleetSettings
    from wsfleet.server.settings import ServerSettings

    return [("server", ServerSettings), ("fleet", FleetSettings)]


def _fields(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _converter(hint: Any) -> Callable[[str], Any]:
    from wsfleet.bus.nodes import RedisNode

    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    origin = getattr(hint, "__origin__", None)
    optional = type(None) in getattr(hint, "__args__", ())
    base = hint if origin is tuple else (args[0] if args else hint)

    def convert(text: str) -> Any:
        if optional and text.lower() in ("", "none", "off"):
            return None
        if getattr(base, "__origin__", None) is tuple:
            item = base.__args__[0]
            parts = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
            return tuple(RedisNode.parse(p) if item is RedisNode else p for p in parts)
        if isinstance(base, type) and issubclass(base, Enum):
            return base(text)
        if base is bool:
            return text.lower() in ("1", "true", "yes", "on")
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if base is Path:
            return Path(text)
        return text

    return convert


def _field_doc(cls: type[Any], name: str) -> str:
    """The attribute docstring under a dataclass field (the string right after it)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            return " ".join(following.value.value.split())
    return ""


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value) or "none"
        return repr(value)
    return "computed"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsfleet",
        description=(
            "wsfleet: real-time WebSocket services across many servers. "
            "Run a node with 'wsfleet serve'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"wsfleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run a node (single-node, no Redis needed) with the demo app or yours",
        description=(
            "Run a wsfleet node. Without --app it runs the built-in demo (echo + rooms chat, "
            "page at http://HOST:PORT/). Every option can also be set by the environment "
            "variable shown in brackets; flags win."
        ),
    )
    serve.add_argument("--host", help="address to bind [WSFLEET_HOST]", default=None)
    serve.add_argument("--port", type=int, help="port to bind, 0 = any free port [WSFLEET_PORT]")
    serve.add_argument(
        "--app",
        help=(
            "your application as 'module:factory'; factory(server) registers handlers "
            "and may be async [WSFLEET_APP]"
        ),
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR [WSFLEET_LOG_LEVEL]")
    serve.add_argument(
        "--no-uvloop",
        action="store_true",
        default=None,
        help="use asyncio's default event loop instead of uvloop [WSFLEET_NO_UVLOOP=1]",
    )
    for title, cls in _groups():
        group = serve.add_argument_group(
            f"{title} settings",
            "fleet mode is on when --redis (or --config-dir) names at least one Redis node"
            if title == "fleet"
            else None,
        )
        for f, hint in _fields(cls):
            flag = "--" + f.name.replace("_", "-")
            env = ENV_PREFIX + f.name.upper()
            group.add_argument(
                flag,
                dest=f"{title}_{f.name}",
                type=_converter(hint),
                default=None,
                metavar=f.name.upper(),
                help=f"{_field_doc(cls, f.name)} (default: {_default_text(f)}) [{env}]",
            )
    return parser


class ConfigError(Exception):
    """Invalid command-line or environment configuration."""


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Merge flags over ``WSFLEET_*`` variables over defaults; raises ConfigError."""

    def pick(flag_value: Any, env_name: str, convert: Callable[[str], Any], default: Any) -> Any:
        if flag_value is not None:
            return flag_value
        raw = environ.get(ENV_PREFIX + env_name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}{env_name}={raw!r} is invalid: {exc}") from None

    built: dict[str, Any] = {}
    for title, cls in _groups():
        values: dict[str, Any] = {}
        for f, hint in _fields(cls):
            value = pick(
                getattr(args, f"{title}_{f.name}"),
                f.name.upper(),
                _converter(hint),
                dataclasses.MISSING,
            )
            if value is not dataclasses.MISSING:
                values[f.name] = value
        if title == "fleet" and not values.get("redis") and values.get("config_dir") is None:
            built[title] = None
            continue
        try:
            built[title] = cls(**values)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc)) from None
    settings = built["server"]
    port = pick(args.port, "PORT", int, 9000)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {port}")
    return {
        "settings": settings,
        "fleet": built["fleet"],
        "host": pick(args.host, "HOST", str, "127.0.0.1"),
        "port": port,
        "app": pick(args.app, "APP", str, None),
        "log_level": pick(args.log_level, "LOG_LEVEL", str, "INFO").upper(),
        "uvloop": not pick(args.no_uvloop, "NO_UVLOOP", _converter(bool), False),
    }


def load_app(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app must look like 'module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import the app module {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{module_name!r} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


def serve(config: dict[str, Any]) -> int:
    from wsfleet.demo import STATIC_DIR
    from wsfleet.demo import setup as demo_setup
    from wsfleet.server import Server

    logging.basicConfig(
        level=config["log_level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if config["uvloop"]:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    server = Server(config["settings"], fleet=config["fleet"])
    static_dir = None
    prepare = None
    if config["app"] is None:
        demo_setup(server)
        static_dir = STATIC_DIR
    else:
        factory = load_app(config["app"])
        result = factory(server)
        if inspect.isawaitable(result):
            prepare = result
    host = config["host"]

    def listening(port: int) -> None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        print(
            f"wsfleet {__version__}: listening on http://{shown}:{port} "
            f"(WebSocket on any path, e.g. ws://{shown}:{port}/ws)",
            flush=True,
        )

    server.run(host, config["port"], static_dir=static_dir, on_listening=listening, prepare=prepare)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config = resolve(args, os.environ)
        return serve(config)
    except ConfigError as exc:
        print(f"wsfleet: configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, WsfleetError) as exc:
        print(f"wsfleet: cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
