"""A Redis master, its replica and three Sentinels (`redis-server --sentinel`) on loopback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.redis_cluster import REDIS, Instance, cli, cluster_port, wait_for
from tests.redis_procs import server_argv

MASTER = "wsfleet"


@dataclass
class SentinelGroup:
    workdir: Path
    data: list[Instance] = field(default_factory=list)
    sentinels: list[Instance] = field(default_factory=list)

    @property
    def address(self) -> str:
        first, *rest = self.sentinels
        seeds = "&".join(f"seed=127.0.0.1:{s.port}" for s in rest)
        return f"redis+sentinel://127.0.0.1:{first.port}/{MASTER}?{seeds}"

    def start(self) -> None:
        assert REDIS is not None, "redis-server is not installed: run 'make test'"
        master_port = cluster_port()
        for replica_of in (None, master_port):
            port = master_port if replica_of is None else cluster_port()
            argv = server_argv(REDIS, port, self.workdir)
            if replica_of is not None:
                argv += ["--replicaof", "127.0.0.1", str(replica_of)]
            instance = Instance(port, argv)
            instance.start()
            self.data.append(instance)
        wait_for(
            lambda: "master_link_status:up" in cli(self.data[1].port, "info", "replication"),
            15,
            "the replica did not sync",
        )
        for _ in range(3):
            port = cluster_port()
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
            )
            instance = Instance(port, [REDIS, str(conf), "--sentinel"])
            instance.start()
            self.sentinels.append(instance)
        wait_for(self._ready, 20, "the Sentinels did not see the replica and each other")

    def _ready(self) -> bool:
        for s in self.sentinels:
            replicas = cli(s.port, "sentinel", "replicas", MASTER)
            others = cli(s.port, "sentinel", "sentinels", MASTER)
            if str(self.data[1].port) not in replicas or others.count("127.0.0.1") < 2:
                return False
        return True

    def master_port(self) -> int:
        out = cli(self.sentinels[0].port, "sentinel", "get-master-addr-by-name", MASTER)
        return int(out.split()[1])

    def failover(self) -> None:
        out = cli(self.sentinels[0].port, "sentinel", "failover", MASTER)
        assert out.strip() == "OK", out

    def stop(self) -> None:
        for instance in [*self.sentinels, *self.data]:
            instance.kill()
