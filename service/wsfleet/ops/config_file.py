"""The optional configuration file: TOML, one key per setting (the names of ``wsfleet serve``'s
flags with underscores), at the top level or under ``[server]``, ``[fleet]`` and ``[ops]``.

    port = 8080
    redis = ["10.0.0.5:6379", "10.0.0.6:6379"]

    [server]
    max_message_size = 65536
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

SECTIONS = ("server", "fleet", "ops", "node")


class ConfigFileError(ValueError):
    """The configuration file cannot be read or has invalid content."""


def load_config_file(path: Path) -> dict[str, Any]:
    """The file's settings as one flat mapping ``{setting name: TOML value}``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigFileError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"configuration file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        items = value.items() if key in SECTIONS and isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if name in flat:
                raise ConfigFileError(f"{path}: setting {name!r} is given twice")
            flat[name] = item
    return flat
