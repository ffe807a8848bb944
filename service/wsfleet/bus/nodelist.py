"""The Redis node list kept in a watched directory (a Kubernetes ConfigMap mounted as one).

The file ``<dir>/redis`` holds one address per line (``host:port`` or ``redis://`` URLs); blank
lines and ``#`` comments are ignored. Kubernetes updates a mounted ConfigMap by swapping a symlink,
so the file is re-read by content, not by inode.
"""

from __future__ import annotations

from pathlib import Path

from wsfleet.bus.nodes import RedisNode

FILE_NAME = "redis"


def read_node_list(directory: Path) -> tuple[RedisNode, ...] | None:
    """The nodes listed in ``directory/redis``; None when the file does not exist."""
    path = directory / FILE_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    nodes: list[RedisNode] = []
    for raw in text.replace(",", "\n").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            nodes.append(RedisNode.parse(line))
    return tuple(dict.fromkeys(nodes))
