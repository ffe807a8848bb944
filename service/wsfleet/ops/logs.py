"""Logging for a node: text or one JSON object per line, with the node name, and repeated
messages written once per interval (a Redis outage must not flood the log collector)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

from wsfleet.ops.settings import LogFormat

#: Distinct messages remembered by the repeat filter; the oldest are forgotten first.
MAX_TRACKED_MESSAGES = 1024


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "node", "msg", ...}``; exceptions as ``exc``."""

    def __init__(self, node: str | None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "node": self.node,
            "msg": record.getMessage(),
        }
        repeats = getattr(record, "repeats", None)
        if repeats:
            entry["repeats"] = repeats
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self, node: str | None) -> None:
        prefix = f"[{node}] " if node else ""
        super().__init__(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        repeats = getattr(record, "repeats", None)
        return f"{text} (repeated {repeats} more times)" if repeats else text


class RepeatFilter(logging.Filter):
    """Lets a given (logger, level, message template) through once per ``interval`` seconds; the
    next one that passes carries ``repeats``, the number suppressed in between."""

    def __init__(self, interval: float, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.interval <= 0 or record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.repeats = last[1]
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > MAX_TRACKED_MESSAGES:
            del self._seen[next(iter(self._seen))]
        return True


def setup_logging(
    level: str,
    fmt: LogFormat,
    node: str | None,
    repeat_interval: float,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones) and return it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(node) if fmt is LogFormat.JSON else TextFormatter(node))
    handler.addFilter(RepeatFilter(repeat_interval))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
