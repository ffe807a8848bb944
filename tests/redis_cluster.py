"""A real Redis Cluster (3 masters + 3 replicas) and real Sentinels on loopback, for the tests.

Processes are plain ``subprocess.Popen`` children (so one cluster serves a whole session, across
event loops), killed by pid when the session ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.redis_procs import server_argv

REDIS = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def cli(port: int, *args: str, timeout: float = 10.0) -> str:
    assert REDIS_CLI is not None, "redis-cli is not installed: run 'make test' (it installs it)"
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def topology_view(nodes: str) -> tuple[dict[str, str], dict[str, str]]:
    """From ``CLUSTER NODES``: the slot ranges of each master, and each node's role."""
    slots: dict[str, str] = {}
    roles: dict[str, str] = {}
    for line in nodes.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, flags = parts[0], parts[2].split(",")
        if "fail" in flags or "handshake" in flags or "noaddr" in flags:
            roles[node_id] = "down"
            continue
        roles[node_id] = "master" if "master" in flags else "slave"
        if roles[node_id] == "master":
            slots[node_id] = " ".join(sorted(p for p in parts[8:] if not p.startswith("[")))
    return slots, roles


def _covers(spans: str, slot: int) -> bool:
    for span in spans.split():
        lo, _, hi = span.partition("-")
        if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
            return True
    return False


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port > 55000:
            port = 20000 + port % 30000
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


@dataclass
class Instance:
    port: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: _answers(self.port), 10, f"redis on {self.port} did not answer")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Migration:
    slot: str
    source: Instance
    target: Instance
    target_id: str


@dataclass
class RedisCluster:
    """``redis-cli --cluster create`` over six ``--cluster-enabled yes`` servers."""

    workdir: Path
    node_timeout_ms: int = 1000
    instances: list[Instance] = field(default_factory=list)

    @property
    def address(self) -> str:
        first, *rest = self.instances
        seeds = "&".join(f"seed=127.0.0.1:{i.port}" for i in rest)
        return f"redis+cluster://127.0.0.1:{first.port}?{seeds}"

    def start(self, count: int = 6, replicas: int = 1) -> None:
        """``count`` servers, ``replicas`` per master. ``redis-cli --cluster create`` wants three
        masters at least; fewer (no replicas: the benchmarks' 1-shard cluster) are joined with
        ``CLUSTER MEET`` and given the slots with ``CLUSTER ADDSLOTSRANGE``."""
        assert REDIS is not None, "redis-server is not installed: run 'make test'"
        for _ in range(count):
            port = cluster_port()
            argv = [
                *server_argv(REDIS, port, self.workdir),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
            ]
            instance = Instance(port, argv)
            instance.start()
            self.instances.append(instance)
        if count < 3:
            assert replicas == 0, "fewer than 3 masters: no replicas"
            self._assign_slots()
        else:
            out = cli(
                self.instances[0].port,
                "--cluster",
                "create",
                *(f"127.0.0.1:{i.port}" for i in self.instances),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
                timeout=60,
            )
            assert "[OK] All 16384 slots covered" in out, out
        self.wait_ok()

    def _assign_slots(self) -> None:
        first = self.instances[0]
        for other in self.instances[1:]:
            cli(first.port, "cluster", "meet", "127.0.0.1", str(other.port))
        step = 16384 // len(self.instances)
        for i, instance in enumerate(self.instances):
            last = 16383 if i == len(self.instances) - 1 else (i + 1) * step - 1
            reply = cli(instance.port, "cluster", "addslotsrange", str(i * step), str(last))
            assert reply.strip() == "OK", reply
        wait_for(
            lambda: all(
                cli(i.port, "cluster", "info").count(
                    "cluster_known_nodes:" + str(len(self.instances))
                )
                for i in self.instances
            ),
            30,
            "the nodes did not meet",
        )

    def wait_ok(self, timeout: float = 30.0) -> None:
        def ok() -> bool:
            live = [i for i in self.instances if i.proc is not None and i.proc.poll() is None]
            if not all("cluster_state:ok" in cli(i.port, "cluster", "info") for i in live):
                return False
            # a replica that has not synced yet cannot be promoted
            infos = [cli(i.port, "info", "replication") for i in live]
            if not all("role:master" in r or "master_link_status:up" in r for r in infos):
                return False
            # every node sees the same masters with the same slots, and its own role as the
            # others do: a restarted master that has not learned yet that its replica took
            # over still answers role:master (a test picking it as a migration target breaks)
            views = [topology_view(cli(i.port, "cluster", "nodes")) for i in live]
            if any(view != views[0] for view in views[1:]):
                return False
            roles = views[0][1]
            return all(
                roles.get(cli(i.port, "cluster", "myid").strip())
                == ("master" if "role:master" in r else "slave")
                for i, r in zip(live, infos, strict=True)
            )

        wait_for(ok, timeout, "the cluster was not ok")

    def masters(self) -> list[Instance]:
        return [i for i in self.instances if "role:master" in cli(i.port, "info", "replication")]

    def slot_spans(self) -> list[tuple[Instance, int, int]]:
        """Each master with the slot ranges it says it owns."""
        spans = []
        for instance in self.masters():
            for line in cli(instance.port, "cluster", "nodes").splitlines():
                parts = line.split()
                if "myself" in parts[2] and "master" in parts[2]:
                    for span in parts[8:]:
                        lo, _, hi = span.partition("-")
                        if lo.isdigit():
                            spans.append((instance, int(lo), int(hi or lo)))
        return spans

    def owner(self, key: str) -> Instance:
        slot = int(cli(self.instances[0].port, "cluster", "keyslot", key).strip())
        for instance, lo, hi in self.slot_spans():
            if lo <= slot <= hi:
                return instance
        raise LookupError(f"no master owns slot {slot}")

    def migrate_slot(self, key: str, target: Instance) -> Instance:
        """Move the slot of ``key`` (and its keys) to ``target``, as a reshard does; returns the
        previous owner."""
        migration = self.begin_migration(key, target)
        self.finish_migration(migration)
        return migration.source

    def begin_migration(self, key: str, target: Instance) -> Migration:
        """Mark the slot of ``key`` importing on ``target`` and migrating on its owner, and move
        its keys: until :meth:`finish_migration`, the owner answers a command on a key it no
        longer holds with ``ASK`` (``SPUBLISH`` stays on the owner until the end)."""
        slot = cli(self.instances[0].port, "cluster", "keyslot", key).strip()
        source = self.owner(key)
        src_id = cli(source.port, "cluster", "myid").strip()
        dst_id = cli(target.port, "cluster", "myid").strip()
        cli(target.port, "cluster", "setslot", slot, "importing", src_id)
        cli(source.port, "cluster", "setslot", slot, "migrating", dst_id)
        while keys := cli(source.port, "cluster", "getkeysinslot", slot, "100").split():
            cli(
                source.port,
                "migrate",
                "127.0.0.1",
                str(target.port),
                "",
                "0",
                "5000",
                "keys",
                *keys,
            )
        return Migration(slot, source, target, dst_id)

    def finish_migration(self, migration: Migration) -> None:
        """Hand the slot over: ``SETSLOT … NODE`` on the target, the source, then every other
        master (as ``redis-cli --cluster reshard`` does), and wait until every live node names
        the target as the slot's owner."""
        others = [m for m in self.masters() if m not in (migration.target, migration.source)]
        for instance in (migration.target, migration.source, *others):
            cli(instance.port, "cluster", "setslot", migration.slot, "node", migration.target_id)

        def agreed() -> bool:
            live = [i for i in self.instances if i.proc is not None and i.proc.poll() is None]
            for instance in live:
                owners = topology_view(cli(instance.port, "cluster", "nodes"))[0]
                owner = next(
                    (n for n, spans in owners.items() if _covers(spans, int(migration.slot))), None
                )
                if owner != migration.target_id:
                    return False
            return True

        wait_for(agreed, 30, f"slot {migration.slot} was not handed over")

    def stop(self) -> None:
        for instance in self.instances:
            instance.kill()
