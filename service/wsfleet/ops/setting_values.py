"""Setting values as text (a flag, a ``WSFLEET_*`` variable, a TOML string): how each type is
parsed, what it accepts, and how its help text reads.

A bad value is refused with a reason that names what is accepted, so that the command line says
the same sentence whether the value came from a flag, the environment or the file.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import re
import textwrap
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from wsfleet.bus.nodes import RedisNode

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_FORMS = (
    "HOST[:PORT] or redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), comma-separated"
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class ValueType:
    """Parses the text of one setting; ``accepted`` says what it takes, for errors and help."""

    parse: Callable[[str], Any]
    accepted: str
    choices: tuple[str, ...] = ()

    def __call__(self, text: str) -> Any:
        try:
            return self.parse(text)
        except ValueError as exc:
            detail = str(exc)
            raise ValueError(
                f"{detail}; expected {self.accepted}" if detail else f"expected {self.accepted}"
            ) from None


def _plain(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def run(text: str) -> Any:
        try:
            return parse(text.strip())
        except ValueError:
            raise ValueError("") from None

    return run


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("")


def _redis_nodes(text: str) -> tuple[RedisNode, ...]:
    parts = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    return tuple(RedisNode.parse(p) for p in parts)


def _strings(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.replace("\n", ",").split(",") if p.strip())


def value_type(hint: Any) -> ValueType:
    """The parser of a settings field with type annotation ``hint``."""
    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    origin = getattr(hint, "__origin__", None)
    optional = type(None) in getattr(hint, "__args__", ())
    base = hint if origin is tuple else (args[0] if args else hint)
    inner = _inner_type(base)
    if not optional:
        return inner

    def parse(text: str) -> Any:
        if text.strip().lower() in ("", "none", "off"):
            return None
        return inner.parse(text)

    return ValueType(parse, f"{inner.accepted}, or off", inner.choices)


def _inner_type(base: Any) -> ValueType:
    if getattr(base, "__origin__", None) is tuple:
        if base.__args__[0] is RedisNode:
            return ValueType(_redis_nodes, REDIS_FORMS)
        return ValueType(_strings, "names separated by commas")
    if isinstance(base, type) and issubclass(base, Enum):
        choices = tuple(str(m.value) for m in base)
        return ValueType(_plain(base), "one of " + ", ".join(choices), choices)
    if base is bool:
        return ValueType(_parse_bool, "true or false (also 1/0, yes/no, on/off)")
    if base is int:
        return ValueType(_plain(int), "a whole number")
    if base is float:
        return ValueType(_plain(float), "a number")
    if base is Path:
        return ValueType(Path, "a path")
    return ValueType(str, "text")


def _port(text: str) -> int:
    port = int(text.strip())
    if not 0 <= port <= 65535:
        raise ValueError("")
    return port


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError("")
    return level


PORT = ValueType(_plain(_port), "a port number from 0 to 65535 (0 picks a free one)")
LOG_LEVEL = ValueType(_log_level, "one of " + ", ".join(LOG_LEVELS), LOG_LEVELS)
TEXT = ValueType(str, "text")
PATH = ValueType(Path, "a path")
BOOL = _inner_type(bool)


def from_toml(value: Any, kind: ValueType, hint: Any) -> Any:
    """A TOML value (string, number, boolean or list) for a setting parsed by ``kind``."""
    if isinstance(value, list):
        return kind(",".join(str(v) for v in value))
    if isinstance(value, str):
        return kind(value)
    base = [a for a in getattr(hint, "__args__", (hint,)) if a is not type(None)]
    target = base[0] if base else hint
    if isinstance(value, bool):
        if target is not bool:
            raise ValueError(f"expected {kind.accepted}")
        return value
    if isinstance(value, int | float) and target in (int, float):
        if target is int and not isinstance(value, int):
            raise ValueError(f"expected {kind.accepted}")
        return kind(str(value))
    raise ValueError(f"expected {kind.accepted}")


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(doc: str) -> str:
    """A docstring without reStructuredText markup, on one line."""
    text = _ROLE.sub(r"\1", doc)
    text = _LITERAL.sub(r"\1", text)
    return " ".join(text.split())


def field_doc(cls: type[Any], name: str) -> str:
    """The attribute docstring under a dataclass field (the string right after it), as plain
    text."""
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
            return plain_text(following.value.value)
    return ""
