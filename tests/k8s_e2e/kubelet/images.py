"""The test kubelet's "images": which local program a container image stands for.

No container runtime or registry exists on the test machines, so an image is looked up here by
its repository (the tag is ignored: a tag change still rolls the Deployment, which is what a
rollout test needs). The container's ``command``/``args`` apply as in Kubernetes: ``command``
replaces the image's entrypoint, ``args`` its default arguments; a bare command name is found on
the image's PATH.

| image repository ends with | entrypoint                           | PATH                     |
| -------------------------- | ------------------------------------ | ------------------------ |
| ``/wsfleet``               | ``wsfleet serve`` (the checkout's)   | the venv, then the system|
| ``/wsfleet-operator``      | ``python -m wsfleet_operator``       | the venv, then the system|
| ``redis``                  | ``redis-server`` (Debian's)          | the system               |

The programs of the first two live in the checkout and its virtualenv: those directories are the
image's files, bound read-only into the container at their own paths after the pod's volumes, so
that a volume (the chart's emptyDir on ``/tmp``) never hides them, wherever the checkout is.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPO = Path(__file__).resolve().parents[3]


class UnknownImage(LookupError):
    pass


@dataclass(frozen=True)
class Image:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    path: str = SYSTEM_PATH
    # The checkout on PYTHONPATH, so a fleet's ``server.app`` may name a module of the tests.
    pythonpath: str = ""
    # Host directories that hold the image's programs, bound at the same path in the container.
    files: tuple[str, ...] = ()


PYTHON_PATH = f"{VENV_BIN}:{SYSTEM_PATH}"
# The checkout, and the virtualenv when it lives elsewhere (both hold the programs' files).
CHECKOUT_FILES = (str(REPO),) + (
    () if VENV_BIN.parent.is_relative_to(REPO) else (str(VENV_BIN.parent),)
)

TABLE: dict[str, Image] = {
    "/wsfleet": Image(("wsfleet",), ("serve",), PYTHON_PATH, str(REPO), CHECKOUT_FILES),
    "/wsfleet-operator": Image(
        (str(VENV_BIN / "python"), "-m", "wsfleet_operator"), (), PYTHON_PATH, "", CHECKOUT_FILES
    ),
    "redis": Image(("redis-server",)),
}


def lookup(image: str) -> Image:
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: -(len(last) - last.index(":"))]
    for suffix, found in TABLE.items():
        if repository.endswith(suffix) or repository == suffix.lstrip("/"):
            return found
    raise UnknownImage(f"the test kubelet has no program for image {image!r} (see {__file__})")


def argv(image: Image, command: list[str] | None, args: list[str] | None) -> list[str]:
    """The process's argv from the image and the container's command/args (Kubernetes rules)."""
    if command:
        out = list(command) + list(args or [])
    else:
        out = list(image.entrypoint) + (list(args) if args else list(image.cmd))
    if "/" not in out[0]:
        found = shutil.which(out[0], path=image.path)
        if found is None:
            raise UnknownImage(f"{out[0]!r} is not on the PATH of the image ({image.path})")
        out[0] = found
    return out
