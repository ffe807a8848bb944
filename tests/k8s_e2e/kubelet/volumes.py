"""Pod volumes of the test kubelet, as directories on the host that the container gets bound in.

ConfigMap, Secret and service-account-token volumes are written the way the real kubelet's
``AtomicWriter`` does: the files live in a timestamped directory ``..<time>``, the symlink
``..data`` points at it, and each key is a symlink ``key -> ..data/key``. An update writes a new
directory and swaps ``..data`` with one ``rename``, so a reader sees the old set or the new set of
files, never a mix, and the running container sees the change through its bind mount.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

DATA = "..data"


def write_atomic(
    directory: Path, files: Mapping[str, bytes], *, mode: int = 0o644, gid: int = 0
) -> bool:
    """Make ``directory`` hold exactly ``files``; returns False when nothing changed."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    current = directory / DATA
    if current.is_symlink():
        old = {p.name: p.read_bytes() for p in (directory / os.readlink(current)).iterdir()}
        if old == dict(files):
            return False
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    os.chmod(stamp, 0o755)
    for key, content in files.items():
        path = stamp / key
        path.write_bytes(content)
        os.chown(path, 0, gid)
        os.chmod(path, mode)
    link = directory / "..data_tmp"
    if link.is_symlink():
        link.unlink()
    os.symlink(stamp.name, link)
    previous = os.readlink(current) if current.is_symlink() else None
    os.rename(link, current)  # the atomic step
    for key in files:
        if not (directory / key).is_symlink():
            os.symlink(f"{DATA}/{key}", directory / key)
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if previous is not None:
        shutil.rmtree(directory / previous, ignore_errors=True)
    return True


def config_map_files(cm: Mapping[str, object] | None, items: list[dict] | None) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    if cm is not None:
        data.update({k: str(v).encode() for k, v in (cm.get("data") or {}).items()})  # type: ignore[union-attr]
        data.update({k: base64.b64decode(str(v)) for k, v in (cm.get("binaryData") or {}).items()})  # type: ignore[union-attr]
    return _select(data, items)


def secret_files(secret: Mapping[str, object] | None, items: list[dict] | None) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    if secret is not None:
        data.update({k: base64.b64decode(str(v)) for k, v in (secret.get("data") or {}).items()})  # type: ignore[union-attr]
        data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})  # type: ignore[union-attr]
    return _select(data, items)


def _select(data: dict[str, bytes], items: list[dict] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def empty_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o1777)
