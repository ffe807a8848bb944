"""The ``wsfleet`` command line.

``wsfleet serve`` runs one node; ``wsfleet config --print`` shows the configuration it would run
with. Every field of :class:`ServerSettings`, :class:`FleetSettings` and :class:`OpsSettings` is a
flag (``--server-ping-interval 20``, ``--redis 127.0.0.1:6379``), a ``WSFLEET_*`` environment
variable (``WSFLEET_SERVER_PING_INTERVAL=20``) and a key of the optional TOML file named by
``--config``; flags win over the environment, which wins over the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import difflib
import importlib
import inspect
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

from wsfleet.ops.setting_values import (
    BOOL,
    LOG_LEVEL,
    LOG_LEVELS,
    PATH,
    PORT,
    TEXT,
    ValueType,
    field_doc,
    from_toml,
    value_type,
)
from wsfleet.protocol.errors import WsfleetError
from wsfleet.version import __version__

ENV_PREFIX = "WSFLEET_"


def _groups() -> list[tuple[str, type[Any]]]:
    from wsfleet.bus.settings import FleetSettings
    from wsfleet.ops.settings import OpsSettings
    from wsfleet.server.settings import ServerSettings

    return [("server", ServerSettings), ("fleet", FleetSettings), ("ops", OpsSettings)]


def _fields(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


_COMPUTED_DEFAULTS = {"server_name": "$POD_NAME, else HOSTNAME-PID"}


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value) or "none"
        if isinstance(value, bool):
            return str(value).lower()
        if value is None or value == "":
            return "off" if f.name.endswith(("_port", "_timeout", "_per_second")) else "none"
        return str(value)
    return _COMPUTED_DEFAULTS.get(f.name, "computed")


def _add_node_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of settings (keys: the options below, with underscores) [WSFLEET_CONFIG]",
    )
    command.add_argument(
        "--host", help="address to bind (default: 127.0.0.1) [WSFLEET_HOST]", default=None
    )
    command.add_argument(
        "--port", help="port to bind, 0 = any free port (default: 9000) [WSFLEET_PORT]"
    )
    command.add_argument(
        "--app",
        help=(
            "your application as 'module:factory'; factory(server) registers handlers "
            "and may be async (default: the built-in demo) [WSFLEET_APP]"
        ),
    )
    command.add_argument(
        "--app-dir",
        metavar="DIR",
        help=(
            "folder the --app module is imported from, put first on the import path "
            "(default: the current directory) [WSFLEET_APP_DIR]"
        ),
    )
    command.add_argument(
        "--log-level",
        help=f"one of {', '.join(LOG_LEVELS)} (default: INFO) [WSFLEET_LOG_LEVEL]",
    )
    command.add_argument(
        "--no-uvloop",
        action="store_const",
        const="true",
        default=None,
        help="use asyncio's default event loop instead of uvloop [WSFLEET_NO_UVLOOP=1]",
    )
    for title, cls in _groups():
        group = command.add_argument_group(
            f"{title} settings",
            "fleet mode is on when --redis (or --config-dir) names at least one Redis node"
            if title == "fleet"
            else None,
        )
        for f, hint in _fields(cls):
            flag = "--" + f.name.replace("_", "-")
            env = ENV_PREFIX + f.name.upper()
            kind = value_type(hint)
            choices = f"one of {', '.join(kind.choices)}; " if kind.choices else ""
            group.add_argument(
                flag,
                dest=f"{title}_{f.name}",
                default=None,
                metavar=f.name.upper(),
                help=(f"{field_doc(cls, f.name)} ({choices}default: {_default_text(f)}) [{env}]"),
            )


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
        usage="wsfleet serve [options]",
        help="run a node (single-node, no Redis needed) with the demo app or yours",
        description=(
            "Run a wsfleet node. Without --app it runs the built-in demo (echo + rooms chat, "
            "page at http://HOST:PORT/). Every option can also be set by the environment "
            "variable shown in brackets or in the --config file; flags win, then the "
            "environment, then the file."
        ),
    )
    _add_node_options(serve)
    config = sub.add_parser(
        "config",
        usage="wsfleet config --print [--format toml|json] [options]",
        help="show the configuration 'wsfleet serve' would run with (secrets masked)",
        description=(
            "Resolve flags, WSFLEET_* variables and the --config file exactly as 'wsfleet serve' "
            "does, check them, and print every setting with where its value came from."
        ),
    )
    config.add_argument(
        "--print", action="store_true", dest="print_config", help="print the configuration"
    )
    config.add_argument("--format", choices=("toml", "json"), default="toml")
    _add_node_options(config)
    return parser


class ConfigError(Exception):
    """Invalid command-line, environment or file configuration (one problem per line)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


#: Options of the node itself, outside the settings dataclasses: (name, value type, default).
_NODE_OPTIONS: tuple[tuple[str, ValueType, Any], ...] = (
    ("host", TEXT, "127.0.0.1"),
    ("port", PORT, 9000),
    ("app", TEXT, None),
    ("app_dir", PATH, Path()),
    ("log_level", LOG_LEVEL, "INFO"),
    ("no_uvloop", BOOL, False),
)


def _setting_problems(exc: Exception, origin: Mapping[str, str]) -> list[str]:
    """The problems a settings class found, each with where its value came from."""
    text = str(exc)
    head, sep, rest = text.partition(": ")
    parts = rest.split("; ") if sep and head.startswith("invalid ") else [text]
    problems = []
    for part in parts:
        name = part.split(" ", 1)[0]
        source = origin.get(name)
        where = f" (from {source})" if source and source != "default" else ""
        problems.append(part + where)
    return problems


def resolve(
    args: argparse.Namespace, environ: Mapping[str, str], sources: dict[str, str] | None = None
) -> dict[str, Any]:
    """Merge flags over ``WSFLEET_*`` variables over the ``--config`` file over defaults.

    Raises :class:`ConfigError` listing every problem; fills ``sources`` (setting name -> where
    its value came from) when given. A bad value gives the same sentence from each source:
    the setting, the value and what it accepts."""
    from wsfleet.ops.config_file import ConfigFileError, load_config_file

    problems: list[str] = []
    origin: dict[str, str] = {} if sources is None else sources
    config_path = args.config or environ.get(ENV_PREFIX + "CONFIG")
    file_values: dict[str, Any] = {}
    if config_path:
        try:
            file_values = load_config_file(Path(config_path))
        except ConfigFileError as exc:
            raise ConfigError(str(exc)) from None
    known = {name for name, _, _ in _NODE_OPTIONS}
    for _, cls in _groups():
        known.update(f.name for f in dataclasses.fields(cls))
    for name in file_values:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown setting {name!r} in {config_path}{hint}")

    def pick(name: str, flag_value: str | None, hint: Any, kind: ValueType) -> Any:
        env_name = ENV_PREFIX + name.upper()
        raw: Any
        if flag_value is not None:
            origin[name] = "flag --" + name.replace("_", "-")
            where, raw = "--" + name.replace("_", "-") + " ", flag_value
        elif env_name in environ:
            origin[name] = "env " + env_name
            where, raw = env_name + "=", environ[env_name]
        elif name in file_values:
            origin[name] = f"file {config_path}"
            where, raw = f"{name} = ", file_values[name]
        else:
            origin[name] = "default"
            return dataclasses.MISSING
        try:
            if name in file_values and flag_value is None and env_name not in environ:
                return from_toml(raw, kind, hint)
            return kind(raw)
        except ValueError as exc:
            in_file = f" in {config_path}" if where.endswith(" = ") else ""
            problems.append(f"{where}{raw!r}{in_file} is invalid: {exc}")
            return dataclasses.MISSING

    node: dict[str, Any] = {}
    for name, kind, default in _NODE_OPTIONS:
        node_hint: Any = type(default) if default is not None else str
        value = pick(name, getattr(args, name), node_hint, kind)
        node[name] = default if value is dataclasses.MISSING else value
    built: dict[str, Any] = {}
    for title, cls in _groups():
        values: dict[str, Any] = {}
        for f, hint in _fields(cls):
            value = pick(f.name, getattr(args, f"{title}_{f.name}"), hint, value_type(hint))
            if value is not dataclasses.MISSING:
                values[f.name] = value
        if title == "fleet" and not values.get("redis") and values.get("config_dir") is None:
            built[title] = None
            continue
        try:
            built[title] = cls(**values)
        except (ValueError, TypeError) as exc:
            problems.extend(_setting_problems(exc, origin))
    if problems:
        raise ConfigError(*problems)
    return {
        "settings": built["server"],
        "fleet": built["fleet"],
        "ops": built["ops"],
        "host": node["host"],
        "port": node["port"],
        "app": node["app"],
        "app_dir": node["app_dir"],
        "log_level": node["log_level"],
        "uvloop": not node["no_uvloop"],
        "config_file": config_path,
    }


def load_app(spec: str, app_dir: Path | None = None) -> Callable[..., Any]:
    """``module:factory``, imported with ``app_dir`` (default: the current directory) first on
    the import path, as uvicorn and gunicorn do."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app {spec!r} is invalid: expected 'module:factory', e.g. app:setup")
    folder = str((app_dir or Path()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import the app module {module_name!r} from {folder}: {exc} "
            "(--app-dir names the folder that holds it)"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{module_name!r} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


class StartError(WsfleetError):
    """The node cannot start (a port is taken, …)."""


def _internal_port(server: Any, ops: Any) -> Callable[[], AbstractAsyncContextManager[None]]:
    from wsfleet.ops.internal_http import internal_http

    @contextlib.asynccontextmanager
    async def sidecar() -> AsyncIterator[None]:
        try:
            opened = internal_http(
                server,
                ops.internal_host,
                ops.internal_port,
                room_namespaces=ops.metrics_room_namespaces,
            )
            http = await opened.__aenter__()
        except OSError as exc:
            raise StartError(
                f"cannot open the internal port {ops.internal_host}:{ops.internal_port} "
                f"({os.strerror(exc.errno) if exc.errno else exc}); pass --internal-port 0 "
                f"for any free port or "
                f"--internal-port off"
            ) from None
        print(
            f"wsfleet: internal port on {http.url} (fleet view at /; "
            "/metrics /healthz /readyz /cluster)",
            flush=True,
        )
        try:
            yield
        finally:
            await opened.__aexit__(None, None, None)

    return sidecar


def _tracing(provider: Any) -> Callable[[], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def sidecar() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(provider.shutdown)  # flushes the last spans

    return sidecar


def serve(config: dict[str, Any]) -> int:
    from wsfleet.demo import STATIC_DIR
    from wsfleet.demo import setup as demo_setup
    from wsfleet.ops.logs import setup_logging
    from wsfleet.ops.tracing import TracingConfigError, provider_from_env
    from wsfleet.server import Server

    ops = config["ops"]
    fleet = config["fleet"]
    node_name = fleet.server_name if fleet is not None else None
    setup_logging(config["log_level"], ops.log_format, node_name, ops.log_repeat_interval)
    try:
        provider = provider_from_env(os.environ, node_name)
    except TracingConfigError as exc:
        raise ConfigError(str(exc)) from None
    if config["uvloop"]:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    server = Server(config["settings"], fleet=fleet)
    sidecars: list[Callable[[], AbstractAsyncContextManager[None]]] = []
    if provider is not None:
        server.enable_tracing(provider)
        sidecars.append(_tracing(provider))
    if ops.internal_port is not None:
        sidecars.append(_internal_port(server, ops))
    static_dir = None
    prepare = None
    if config["app"] is None:
        demo_setup(server)
        static_dir = STATIC_DIR
    else:
        factory = load_app(config["app"], config["app_dir"])
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

    server.run(
        host,
        config["port"],
        static_dir=static_dir,
        on_listening=listening,
        prepare=prepare,
        sidecars=sidecars,
    )
    return 0


_SECRET_WORDS = ("password", "secret", "token")


def _shown(name: str, value: Any) -> Any:
    """A setting's value as ``config --print`` shows it: secrets masked, TOML-friendly."""
    if value is None:
        return None
    if any(word in name for word in _SECRET_WORDS):
        return "***"
    if isinstance(value, tuple):
        return [str(v) for v in value]  # RedisNode's str() masks its password
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, int | float | bool | str):
        return value
    return str(value)


def effective_config(
    config: dict[str, Any], sources: Mapping[str, str]
) -> list[tuple[str, Any, str]]:
    """``(name, shown value, source)`` for every setting."""
    rows: list[tuple[str, Any, str]] = []
    for name, _, _ in _NODE_OPTIONS:
        value = config["log_level"] if name == "log_level" else config.get(name)
        if name == "no_uvloop":
            value = not config["uvloop"]
        rows.append((name, _shown(name, value), sources.get(name, "default")))
    for title, cls in _groups():
        settings = config["settings" if title == "server" else title]
        for f in dataclasses.fields(cls):
            if settings is None:
                rows.append((f.name, None, "fleet mode off"))
                continue
            rows.append((f.name, _shown(f.name, getattr(settings, f.name)), sources[f.name]))
    return rows


def print_config(rows: list[tuple[str, Any, str]], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps({name: value for name, value, _ in rows}, indent=2))
        return
    for name, value, source in rows:
        if value is None:
            print(f"# {name} is not set ({source})")
        else:
            print(f"{name} = {json.dumps(value)}  # {source}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        sources: dict[str, str] = {}
        config = resolve(args, os.environ, sources)
        if args.command == "config":
            if not args.print_config:
                print("wsfleet config: the configuration is valid (--print shows it)")
                return 0
            print_config(effective_config(config, sources), args.format)
            return 0
        return serve(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"wsfleet: configuration error: {problem}", file=sys.stderr)
        return 2
    except (OSError, WsfleetError) as exc:
        print(f"wsfleet: cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
