"""The fleet scenarios S3-S5 of ``python -m bench.run``: three wsfleet nodes over one Redis.

Each repeat starts its own ``redis-server`` on a free loopback port and three
``python -m bench.server --kind wsfleet --redis …`` nodes, runs the wsfleet measurement with the
Go load generator, then the raw Redis pub/sub reference (``bench/redisref.py``) through the same
``redis-server``, and stops every process by its pid. Nothing is pinned: the three nodes, Redis
and the load generator share the machine's CPUs, and each one's CPU is reported.

* S3 cross-node broadcast: ``wsload fanout`` with its clients spread round-robin over the nodes;
  the trigger (``server.broadcast`` per tick) goes to node 1. Reference: ``redisref --mode fanout``,
  the same number of messages of the same size to 3 subscribers (one per node in wsfleet).
* S4 cross-node direct messages: ``wsload dm``, pairs on different nodes answering each other
  through ``server.to_socket_id``. Reference: ``redisref --mode rpc`` with one responder and one
  caller per pair (request and answer are each one PUBLISH → one delivery).
* S5 cross-server RPC: ``wsload call`` sends one ``rpc`` event to node 1, whose handler runs the
  callers (``emit_cross_server_async(mode="all")``, answered by all 3 nodes). Reference:
  ``redisref --mode rpc`` with 3 responders and the same number of callers.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tests.redis_procs import free_port, server_argv

if TYPE_CHECKING:
    from bench.run import Config, ServerProcess

FLEET_SCENARIOS = ("S3", "S4", "S5")
#: ``WSFLEET_BENCH_RECOVERY=1``: the nodes run with ``--recovery`` and the load generator's
#: clients ask for it (``wsf_recover=1``): the live-path cost of recovery.
RECOVERY = os.environ.get("WSFLEET_BENCH_RECOVERY") == "1"
NODES = 3
# (metric key, Node.js original on 2 cores, python-socketio, wanted multiple of the original)
TARGETS: dict[str, tuple[str, float, float, float]] = {
    "S3": ("msgs_per_s", 155_000, 33_000, 1.0),
    "S4": ("msgs_per_s", 18_500, 4_200, 2.0),
    "S5": ("calls_per_s", 7_400, 700, 1.5),
}


_RUN = itertools.count(1)


class RedisServer:
    """A ``redis-server`` on a free loopback port, no persistence; stopped by its pid."""

    def __init__(self, logfile: IO[str]) -> None:
        from bench.run import BenchError

        exe = shutil.which("redis-server")
        if exe is None:
            raise BenchError("S3-S5 need redis-server on the PATH (e.g. apt-get install redis)")
        self.workdir = tempfile.TemporaryDirectory(prefix="wsfleet-bench-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            server_argv(exe, self.port, self.workdir.name),
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=logfile,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise BenchError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        from bench.run import stop_process

        stop_process(self.proc, 10)
        self.workdir.cleanup()


class ClusterServer:
    """A Redis Cluster of ``shards`` masters (no replicas: on a 2-core box they would only take
    CPU) from ``tests/redis_cluster.py``; ``port``/``pid`` are its first master's (the raw
    reference runs there), ``pids`` all of them."""

    def __init__(self, shards: int = 3) -> None:
        from tests.redis_cluster import RedisCluster

        self.workdir = tempfile.TemporaryDirectory(prefix="wsfleet-bench-cluster-")
        self.cluster = RedisCluster(Path(self.workdir.name))
        try:
            self.cluster.start(count=shards, replicas=0)
        except BaseException:
            self.stop()
            raise
        first = self.cluster.instances[0]
        assert first.proc is not None
        self.port = first.port
        self.pid = first.proc.pid
        self.pids = [i.proc.pid for i in self.cluster.instances if i.proc is not None]
        self.address = self.cluster.address

    def stop(self) -> None:
        self.cluster.stop()
        self.workdir.cleanup()


@contextmanager
def fleet(
    cfg: Config, logfile: IO[str], scenario: str = "fleet", kind: str = "wsfleet"
) -> Iterator[tuple[RedisServer | ClusterServer, list[ServerProcess]]]:
    """A ``redis-server`` and three nodes (``kind`` "original": nodes of the Node.js original,
    ``bench/original.py``); with ``cfg.profile`` each wsfleet node runs under cProfile and its
    top functions are printed once it stopped (next to the run's log file)."""
    from bench.original import OriginalNode
    from bench.run import ServerProcess, print_profile

    profiles: list[Path] = []
    with ExitStack() as stack:
        redis: RedisServer | ClusterServer
        if cfg.redis_mode == "cluster":
            redis = ClusterServer(cfg.shards)
            address = redis.address
        else:
            redis = RedisServer(logfile)
            address = f"127.0.0.1:{redis.port}"
        stack.callback(redis.stop)
        nodes: list[ServerProcess] = []
        for i in range(NODES):
            if kind == "original":
                original = OriginalNode(cfg, logfile, redis=address, name=f"n{i + 1}", pin=False)
                stack.callback(original.stop)
                nodes.append(original)  # type: ignore[arg-type]
                continue
            extra = ["--redis", address, "--name", f"n{i + 1}"]
            if RECOVERY:
                extra.append("--recovery")
            profile = None
            if cfg.profile:
                stem = Path(logfile.name).with_suffix("").name
                profile = (
                    Path(logfile.name).parent / f"{stem}-{scenario}-n{i + 1}-{next(_RUN)}.prof"
                )
                profiles.append(profile)
            node = ServerProcess(cfg, "wsfleet", logfile, profile, extra, pin=False)
            stack.callback(node.stop)
            nodes.append(node)
        time.sleep(1.0)  # let the nodes subscribe and see each other in the registry
        yield redis, nodes
    for profile in profiles:
        if profile.exists():
            print_profile(profile)


def _names(redis: RedisServer | ClusterServer, nodes: list[ServerProcess]) -> dict[int, str]:
    names = {n.pid: f"n{i + 1}" for i, n in enumerate(nodes)}
    for i, pid in enumerate(_redis_pids(redis)):
        names[pid] = "redis" if i == 0 else f"redis{i + 1}"
    return names


def _redis_pids(redis: RedisServer | ClusterServer) -> list[int]:
    return list(redis.pids) if isinstance(redis, ClusterServer) else [redis.pid]


def _per_proc(procs: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pid, cpu in procs.items():
        name = names.get(int(pid), pid)
        out[f"{name}_cpu_share"] = cpu["cpu_share"]
    out["nodes_cpu_share"] = sum(v for k, v in out.items() if k.startswith("n"))
    return out


def _ours(res: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """wsfleet's figures from a load generator result measured over the nodes' pids."""
    cpu = res["cpu"]
    return {
        "msgs_per_s": res["msgs_per_s"],
        "p50_ms": res["latency"]["p50_ms"],
        "p99_ms": res["latency"]["p99_ms"],
        **_per_proc(cpu.get("procs", {}), names),
        "driver_cpu_share": cpu.get("loadgen_cpu_share"),
        "machine_busy_share": cpu.get("machine_busy_share"),
        "raw": res,
    }


def _loadgen(
    cfg: Config,
    mode: str,
    nodes: list[ServerProcess],
    pids: list[int],
    *extra: str,
    timeout: float,
    logfile: IO[str],
) -> dict[str, Any]:
    from bench.run import CLK_TCK, LOADGEN_BIN, run_loadgen

    cmd = [
        str(LOADGEN_BIN),
        mode,
        "-addr",
        f"127.0.0.1:{nodes[0].port}",
        "-addrs",
        ",".join(f"127.0.0.1:{n.port}" for n in nodes),
        "-pids",
        ",".join(map(str, pids)),
        "-clk-tck",
        str(CLK_TCK),
        *(["-path", "/ws?wsf_recover=1"] if RECOVERY else []),
        *extra,
    ]
    return run_loadgen(dataclasses.replace(cfg, pin=False), cmd, timeout, logfile)


def _reference(port: int, redis_pid: int, *args: str, timeout: float) -> dict[str, Any]:
    from bench.run import ROOT, BenchError

    cmd = [
        sys.executable,
        "-m",
        "bench.redisref",
        "--port",
        str(port),
        "--redis-pid",
        str(redis_pid),
        *args,
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("the Redis reference did not finish in time") from exc
    if proc.returncode != 0:
        raise BenchError(f"the Redis reference failed: {proc.stderr.strip()[-2000:]}")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    window = res["window_s"] or 1e-9
    res["redis_cpu_share"] = (res["redis_cpu_s"] or 0.0) / window
    res["driver_cpu_share"] = res["ref_cpu_s"] / window
    res["p50_ms"] = res["latency"]["p50_ms"]
    res["p99_ms"] = res["latency"]["p99_ms"]
    return res


def _rpc_reference(
    cfg: Config, redis: RedisServer | ClusterServer, responders: int, callers: int, duration: float
) -> dict[str, Any]:
    """``redisref --mode rpc``: ``callers`` in a closed loop, each call answered by every one
    of ``responders``."""
    return _reference(
        redis.port,
        redis.pid,
        "--mode",
        "rpc",
        "--subscribers",
        str(responders),
        "--callers",
        str(callers),
        "--duration",
        str(duration),
        "--size",
        str(cfg.msg_size),
        timeout=duration + 60,
    )


class Sampler:
    """Samples utime+stime of some pids every 50 ms, to cut a window out afterwards."""

    def __init__(self, pids: list[int]) -> None:
        from bench.run import CLK_TCK

        self.pids, self.clk = pids, CLK_TCK
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _one(self) -> tuple[float, dict[int, float]]:
        ticks: dict[int, float] = {}
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks[pid] = (int(fields[11]) + int(fields[12])) / self.clk
            except OSError:
                pass
        return time.time(), ticks

    def _run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(self._one())
            self.stop.wait(0.05)

    def window(self, start: float, end: float) -> dict[str, Any]:
        self.stop.set()
        self.thread.join()
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, a), (t1, b) = inside[0], inside[-1]
        return {
            str(pid): {"cpu_share": (b[pid] - a[pid]) / (t1 - t0)}
            for pid in self.pids
            if pid in a and pid in b
        }


def s3(
    cfg: Config, logfile: IO[str], kind: str = "wsfleet", reference: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench.run import BenchError

    with fleet(cfg, logfile, "S3", kind) as (redis, nodes):
        res = _loadgen(
            cfg,
            "fanout",
            nodes,
            [*(n.pid for n in nodes), *_redis_pids(redis)],
            "-conns",
            str(cfg.s3_clients),
            "-broadcasts",
            str(cfg.s3_broadcasts),
            "-warmup",
            str(cfg.s1_warmup),
            "-size",
            str(cfg.msg_size),
            "-timeout",
            "90s",
            timeout=120,
            logfile=logfile,
        )
        if not res["complete"] or res["order_errors"] or res["extra_msgs"]:
            raise BenchError(f"S3 did not deliver every message in order: {res}")
        ref = (
            _reference(
                redis.port,
                redis.pid,
                "--mode",
                "fanout",
                "--messages",
                str(cfg.s3_broadcasts),
                "--subscribers",
                str(NODES),
                "--size",
                str(cfg.msg_size),
                timeout=90,
            )
            if reference
            else {}
        )
        names = _names(redis, nodes)
    return _ours(res, names), ref


def s4(
    cfg: Config, logfile: IO[str], kind: str = "wsfleet", reference: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench.run import BenchError

    with fleet(cfg, logfile, "S4", kind) as (redis, nodes):
        res = _loadgen(
            cfg,
            "dm",
            nodes,
            [*(n.pid for n in nodes), *_redis_pids(redis)],
            "-pairs",
            str(cfg.s4_pairs),
            "-duration",
            f"{cfg.s4_duration}s",
            "-warmup",
            "1s",
            "-size",
            str(cfg.msg_size),
            "-timeout",
            f"{cfg.s4_duration + 60}s",
            timeout=cfg.s4_duration + 90,
            logfile=logfile,
        )
        if not res["complete"]:
            raise BenchError(f"S4 lost messages or connections: {res}")
        ref = _rpc_reference(cfg, redis, 1, cfg.s4_pairs, cfg.s4_duration) if reference else {}
        names = _names(redis, nodes)
    ours = _ours(res, names)
    ours["rtt_p50_ms"] = res["rtt"]["p50_ms"]
    ours["rtt_p99_ms"] = res["rtt"]["p99_ms"]
    if reference:
        ref["rtt_p50_ms"] = ref["call_latency"]["p50_ms"]
        ref["rtt_p99_ms"] = ref["call_latency"]["p99_ms"]
    return ours, ref


def s5(
    cfg: Config, logfile: IO[str], kind: str = "wsfleet", reference: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench.run import BenchError

    with fleet(cfg, logfile, "S5", kind) as (redis, nodes):
        pids = [*(n.pid for n in nodes), *_redis_pids(redis)]
        sampler = Sampler(pids)
        payload = json.dumps(
            {
                "callers": cfg.s5_callers,
                "duration": cfg.s5_duration,
                "nodes": NODES,
                "size": cfg.msg_size,
            }
        )
        t_sent = time.time()
        res = _loadgen(
            cfg,
            "call",
            nodes,
            pids,
            "-event",
            "rpc",
            "-payload",
            payload,
            "-timeout",
            f"{cfg.s5_duration + 60}s",
            timeout=cfg.s5_duration + 90,
            logfile=logfile,
        )
        t_acked = time.time()
        ack = res["ack"]
        if not isinstance(ack, dict) or "error" in ack or ack.get("failures"):
            raise BenchError(f"S5 failed: {ack}")
        # The handler's window is its last `duration` seconds before it acked (the callers finish
        # their last call after it, which takes milliseconds).
        procs = sampler.window(max(t_sent, t_acked - cfg.s5_duration), t_acked)
        ref = (
            _rpc_reference(cfg, redis, NODES, cfg.s5_callers, cfg.s5_duration) if reference else {}
        )
        names = _names(redis, nodes)
    ours = {
        "calls_per_s": ack["calls_per_s"],
        "p50_ms": ack["p50_ms"],
        "p99_ms": ack["p99_ms"],
        **_per_proc(procs, names),
        "raw": res,
    }
    if reference:
        ref["p50_ms"] = ref["call_latency"]["p50_ms"]
        ref["p99_ms"] = ref["call_latency"]["p99_ms"]
    return ours, ref


RUNNERS = {"S3": s3, "S4": s4, "S5": s5}

_CPU_ROWS: list[tuple[str, str, str, bool, float | None]] = [
    ("n1_cpu_share", "node n1 CPU share", "{:.0%}", False, None),
    ("n2_cpu_share", "node n2 CPU share", "{:.0%}", False, None),
    ("n3_cpu_share", "node n3 CPU share", "{:.0%}", False, None),
    ("nodes_cpu_share", "all nodes' CPU (cores)", "{:.2f}", False, None),
    ("redis_cpu_share", "redis-server CPU share", "{:.0%}", False, None),
    ("driver_cpu_share", "load generator / reference process CPU share", "{:.0%}", False, None),
]
METRICS: dict[str, list[tuple[str, str, str, bool, float | None]]] = {
    "S3": [
        ("msgs_per_s", "delivered msgs/s", "{:,.0f}", True, None),
        ("p50_ms", "latency p50 (ms)", "{:.2f}", False, None),
        ("p99_ms", "latency p99 (ms)", "{:.2f}", False, None),
        *_CPU_ROWS,
    ],
    "S4": [
        ("msgs_per_s", "delivered msgs/s", "{:,.0f}", True, None),
        ("p50_ms", "one-way latency p50 (ms)", "{:.2f}", False, None),
        ("p99_ms", "one-way latency p99 (ms)", "{:.2f}", False, None),
        ("rtt_p50_ms", "round trip p50 (ms)", "{:.2f}", False, None),
        ("rtt_p99_ms", "round trip p99 (ms)", "{:.2f}", False, None),
        *_CPU_ROWS,
    ],
    "S5": [
        ("calls_per_s", "calls/s", "{:,.0f}", True, None),
        ("p50_ms", "call latency p50 (ms)", "{:.2f}", False, None),
        ("p99_ms", "call latency p99 (ms)", "{:.2f}", False, None),
        *_CPU_ROWS[:5],
        ("driver_cpu_share", "reference process CPU share", "{:.0%}", False, None),
    ],
}


def describe(cfg: Config, scenario: str) -> str:
    if scenario == "S3":
        return (
            f"S3 cross-node broadcast: {NODES} nodes, {cfg.s3_clients:,} clients spread evenly, "
            f"{cfg.s3_broadcasts} broadcasts of {cfg.msg_size} B triggered on n1"
        )
    if scenario == "S4":
        return (
            f"S4 cross-node direct messages: {cfg.s4_pairs} sender/receiver pairs on different "
            f"nodes, closed loop for {cfg.s4_duration:g} s ({cfg.msg_size} B)"
        )
    return (
        f"S5 cross-server RPC: {cfg.s5_callers} callers on n1, emit_cross_server_async(mode="
        f'"all") to {NODES} nodes, closed loop for {cfg.s5_duration:g} s'
    )


def target_cell(scenario: str, key: str, value: Any) -> str:
    """The absolute target against the Node.js original, for the headline metric."""
    if scenario not in TARGETS or TARGETS[scenario][0] != key:
        return ""
    _, node, pysio, factor = TARGETS[scenario]
    want = node * factor
    verdict = "-" if not isinstance(value, int | float) else "met" if value >= want else "MISSED"
    return (
        f"≥ {want:,.0f} ({factor:g}× Node.js {node:,.0f}; python-socketio {pysio:,.0f}): "
        f"{verdict}, {value / node:.2f}× Node.js"
        if isinstance(value, int | float)
        else f"≥ {want:,.0f}"
    )
