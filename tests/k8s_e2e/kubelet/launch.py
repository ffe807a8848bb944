"""Starts one container process (run as root by the test kubelet, then it becomes the container):

``python -m tests.k8s_e2e.kubelet.launch <spec.json>`` where the JSON holds ``netns``, ``argv``,
``env``, ``cwd``, ``uid``, ``gid``, ``groups``, ``scratch`` (a directory for the root overlay),
``mounts`` ([host path, container path, read-only]) and ``hosts`` (a file for /etc/hosts).

It enters the pod's network namespace, makes a private mount namespace, builds a root file system
as an overlay of the host's ``/`` with a tmpfs upper layer (so nothing it writes reaches the
host, and mount points can be made anywhere), binds ``/proc``, ``/dev``, ``/sys`` and the pod's
volumes into it, chroots, drops to the pod's user and execs the program: its pid is the
container's.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

from tests.k8s_e2e.netns import setns

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(
    src: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _libc.mount(
            src.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {src} {target}",
    )


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    setns(spec["netns"])
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    mount("none", "/", None, MS_REC | MS_PRIVATE)

    scratch = spec["scratch"]
    os.makedirs(scratch, exist_ok=True)
    mount("tmpfs", scratch, "tmpfs", 0, "mode=0755")
    for sub in ("upper", "work", "root"):
        os.mkdir(f"{scratch}/{sub}")
    root = f"{scratch}/root"
    mount(
        "overlay", root, "overlay", 0, f"lowerdir=/,upperdir={scratch}/upper,workdir={scratch}/work"
    )
    for special in ("/proc", "/dev", "/sys"):
        mount(special, root + special, None, MS_BIND | MS_REC)
    # The pod's files, reachable from inside the new root while its mount points are made.
    staged = f"{root}/.kubelet"
    os.mkdir(staged)
    for i, (src, _dst, _ro) in enumerate(spec["mounts"]):
        target = f"{staged}/{i}"
        (os.mkdir if os.path.isdir(src) else lambda p: open(p, "w").close())(target)
        mount(src, target, None, MS_BIND)
    os.chroot(root)
    os.chdir("/")
    os.chmod("/root", 0o755)  # the copy in the upper layer: the host's /root is untouched
    for i, (_src, dst, read_only) in enumerate(spec["mounts"]):
        source = f"/.kubelet/{i}"
        if os.path.isdir(source):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.exists(dst):
                open(dst, "w").close()
        mount(source, dst, None, MS_BIND)
        if read_only:
            mount(source, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    for i in range(len(spec["mounts"])):
        _check(_libc.umount2(f"/.kubelet/{i}".encode(), MNT_DETACH), "umount")
    os.chdir(spec.get("cwd") or "/")
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    os.umask(0o022)
    argv = spec["argv"]
    os.execve(argv[0], argv, spec["env"])


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:
        print(f"test kubelet: cannot start the container: {exc}", file=sys.stderr)
        sys.exit(127)
