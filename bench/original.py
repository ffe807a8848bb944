"""wsfleet next to the Node.js original, same machine, same run: ``python -m bench.original``.

The original (`websocket-cross-server-adapter` 1.0.7) is not on the npm registry: install it from
a checkout or a packed tarball of its repository, outside the project, e.g.
``npm install --prefix bench/.build/original <path to websocket-cross-server-adapter-1.0.7.tgz>``
(``bench/.build`` is ignored by git), or point ``--module`` / ``WSFLEET_ORIGINAL_MODULE`` at the
installed package. Its nodes run ``bench/original_node.mjs``, which loads that package as it is
and gives it the behaviour of bench/servers.py's wsfleet node (nothing of it is copied here).

Each round runs every scenario on both, in alternating order, with the Go load generator of
``bench.run``: S1 (fan-out, one node) and S2 (request/ack, one node) pinned as in ``bench.run``,
S3 (cross-node broadcast: one node's ``trigger`` handler broadcasts in one synchronous loop, the
original's own pattern, so wsfleet's nodes run with ``--trigger loop`` here; latency p50/p99 is
compared too), S4 (direct messages) and S5 (RPC to all nodes) on three nodes over one
``redis-server`` with the raw Redis reference of ``bench.fleet`` measured in wsfleet's run. The
table gives each side's median and the median of the per-round ratios wsfleet ÷ original, with the
1-minute load average at the start of every run next to it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from bench.run import (
    RESULTS,
    ROOT,
    BenchError,
    Config,
    ServerProcess,
    build_loadgen,
    log,
    parse_args,
    raise_open_files,
)

PACKAGE = "websocket-cross-server-adapter"
CANDIDATES = (
    ROOT / "bench" / ".build" / "original" / "node_modules" / PACKAGE,
    ROOT / "tests" / "interop" / "original-node" / "node_modules" / PACKAGE,
)
SCRIPT = ROOT / "bench" / "original_node.mjs"
SCENARIOS = ("S1", "S2", "S3", "S4", "S5")
HEADLINE = {
    "S1": "msgs_per_s",
    "S2": "acks_per_s",
    "S3": "msgs_per_s",
    "S4": "msgs_per_s",
    "S5": "calls_per_s",
}
LATENCY = ("S3",)
"""Scenarios whose latency (p50/p99, server timestamp to client receive) is compared too."""


def find_module(explicit: str | None) -> Path:
    for candidate in (explicit, os.environ.get("WSFLEET_ORIGINAL_MODULE"), *CANDIDATES):
        if candidate and (Path(candidate) / "package.json").is_file():
            return Path(candidate).resolve()
    raise BenchError(
        f"the original ({PACKAGE}) is not installed: see the docstring of bench/original.py "
        f"(looked in {', '.join(str(c) for c in CANDIDATES)})"
    )


class OriginalNode(ServerProcess):
    """One ``node bench/original_node.mjs`` child, run like ``bench.run.ServerProcess``; stopped
    by its pid only."""

    module: Path | None = None

    def __init__(
        self,
        cfg: Config,
        logfile: IO[str],
        *,
        redis: str | None = None,
        name: str | None = None,
        pin: bool | None = None,
    ) -> None:
        node = shutil.which("node")
        if node is None:
            raise BenchError("the original's nodes need node on the PATH")
        module = OriginalNode.module or find_module(None)
        cmd = [node, str(SCRIPT), "--module", str(module), "--port", "0"]
        if redis is not None:
            cmd += ["--redis", redis, "--name", name or "n1"]
        pin = cfg.pin if pin is None else pin
        self._launch(cmd, "original", logfile, cfg.server_cpus if pin else None)


@contextlib.contextmanager
def _single(cfg: Config, kind: str, logfile: IO[str]) -> Iterator[Any]:

    srv: Any = OriginalNode(cfg, logfile) if kind == "original" else None
    if srv is None:
        srv = ServerProcess(cfg, "wsfleet", logfile, None)
    try:
        yield srv
    finally:
        srv.stop()


def run_one(cfg: Config, scenario: str, kind: str, logfile: IO[str]) -> dict[str, Any]:
    """One measurement of ``kind`` ("wsfleet" or "original"); fleet scenarios add the raw
    Redis reference to wsfleet's run (``ref_*``)."""
    from bench import fleet
    from bench.run import RUNNERS

    load = os.getloadavg()[0]
    if scenario in ("S1", "S2"):
        with _single(cfg, kind, logfile) as srv:
            result = RUNNERS[scenario](cfg, srv, logfile)
        result.pop("raw", None)
    else:
        runner = {"S3": fleet.s3, "S4": fleet.s4, "S5": fleet.s5}[scenario]
        if scenario == "S3":  # the original's handler broadcasts in one synchronous loop
            cfg = dataclasses.replace(cfg, trigger="loop")
        result, ref = runner(cfg, logfile, kind, kind == "wsfleet")
        result.pop("raw", None)
        key = HEADLINE[scenario]
        if ref:
            result["ref_" + key] = ref.get(key)
    result["load1"] = load
    return result


def _median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if isinstance(v, int | float)]
    return statistics.median(kept) if kept else None


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, by_kind in runs.items():
        key = HEADLINE[scenario]
        ours = [r[key] for r in by_kind["wsfleet"]]
        theirs = [r[key] for r in by_kind["original"]]
        ratios = [a / b for a, b in zip(ours, theirs, strict=False) if a and b]
        refs = [r.get("ref_" + key) for r in by_kind["wsfleet"]]
        out[scenario] = {
            "metric": key,
            "wsfleet": _median(ours),
            "original": _median(theirs),
            "ratio": _median(ratios),
            "ratio_min_max": [min(ratios), max(ratios)] if ratios else None,
            "raw_redis": _median(refs),
            "wsfleet_to_raw": _median([a / r for a, r in zip(ours, refs, strict=False) if a and r]),
            "original_to_raw": _median(
                [b / r for b, r in zip(theirs, refs, strict=False) if b and r]
            ),
            "load1": [round(r["load1"], 2) for k in ("wsfleet", "original") for r in by_kind[k]],
        }
        if scenario in LATENCY:
            for q in ("p50_ms", "p99_ms"):
                out[scenario][q] = {k: _median([r.get(q) for r in by_kind[k]]) for k in by_kind}
    return out


def print_table(summary: dict[str, Any]) -> None:
    head = (
        f"{'scenario':<9}{'metric':<12}{'wsfleet':>10}{'original':>10}"
        f"{'wsfleet ÷ original':>22}{'raw Redis':>11}{'÷ raw (ws / orig)':>20}  load (1 min)"
    )
    print(head)
    print("-" * len(head))
    for scenario, s in summary.items():
        lo, hi = s["ratio_min_max"] or (None, None)
        ratio = f"{s['ratio']:.2f}× ({lo:.2f}-{hi:.2f})" if s["ratio"] is not None else "-"
        raw = f"{s['raw_redis']:,.0f}" if s["raw_redis"] else "-"
        to_raw = (
            f"{s['wsfleet_to_raw']:.2f} / {s['original_to_raw']:.2f}"
            if s["wsfleet_to_raw"] and s["original_to_raw"]
            else "-"
        )
        loads = f"{min(s['load1']):.1f}-{max(s['load1']):.1f}"
        print(
            f"{scenario:<9}{s['metric']:<12}{s['wsfleet'] or 0:>10,.0f}{s['original'] or 0:>10,.0f}"
            f"{ratio:>22}{raw:>11}{to_raw:>20}  {loads}"
        )
        for q in ("p50_ms", "p99_ms"):
            if q in s:
                ours, theirs = s[q]["wsfleet"], s[q]["original"]
                if ours is not None and theirs is not None:
                    print(f"{'':<9}{q:<12}{ours:>10.1f}{theirs:>10.1f}{ours / theirs:>21.2f}×")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.original", description=__doc__)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--rounds", type=int, default=3, help="rounds (each runs both, alternating)")
    p.add_argument("--duration", type=float, default=5.0, help="S2, S4, S5 seconds (default 5)")
    p.add_argument("--module", help=f"the installed {PACKAGE} package directory")
    p.add_argument("--out", type=Path, help="JSON results (default bench/results/original-*.json)")
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if bad := [s for s in scenarios if s not in SCENARIOS]:
        p.error(f"unknown scenarios {bad}; choose from {', '.join(SCENARIOS)}")
    d = f"{args.duration:g}"
    cfg, _ = parse_args(["--scenarios", "S1", "--duration", d, "--fleet-duration", d])
    cfg = dataclasses.replace(cfg, scenarios=scenarios)
    try:
        OriginalNode.module = find_module(args.module)
        # bench.fleet imports this module afresh (this one runs as __main__): it finds it here.
        os.environ["WSFLEET_ORIGINAL_MODULE"] = str(OriginalNode.module)
        raise_open_files(max(cfg.s1_clients, cfg.s2_clients) + 1024)
        build_loadgen()
    except BenchError as exc:
        log(f"bench: {exc}")
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = RESULTS / f"original-{stamp}.log"
    log(f"the original from {OriginalNode.module}; logs in {log_path}")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {"wsfleet": [], "original": []} for s in scenarios
    }
    try:
        with open(log_path, "w") as logfile:
            for rnd in range(args.rounds):
                order = ("wsfleet", "original") if rnd % 2 == 0 else ("original", "wsfleet")
                for scenario in scenarios:
                    for kind in order:
                        result = run_one(cfg, scenario, kind, logfile)
                        runs[scenario][kind].append(result)
                        key = HEADLINE[scenario]
                        log(
                            f"round {rnd + 1}/{args.rounds} {scenario} {kind:>8}: {key} "
                            f"{result[key]:,.0f} (load {result['load1']:.2f})"
                        )
    except BenchError as exc:
        log(f"bench: {exc}")
        return 1
    summary = summarize(runs)
    print()
    print_table(summary)
    out = args.out or RESULTS / f"original-{stamp}.json"
    payload = {
        "command": "python -m bench.original " + " ".join(argv or sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "module": str(OriginalNode.module),
        "cores": os.cpu_count(),
        "summary": summary,
        "runs": runs,
    }
    out.write_text(json.dumps(payload, indent=1, default=str))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
