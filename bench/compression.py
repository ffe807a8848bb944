"""S1 (fan-out) with permessage-deflate off and on: ``python -m bench.compression``.

The same fan-out as ``bench.run``'s S1 (1,000 clients, 200 broadcasts) against the wsfleet server
only, each case ``--repeats`` times (medians reported): bytes the clients received per message
(frame headers included), delivered messages per second and the server's CPU per delivered
message. The load generator offers permessage-deflate (``-deflate``) in the "on" cases; the
broadcasts are filled with words (``--pad text``), which compress like chat text, not with the
x's of the throughput benchmarks.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import (
    RESULTS,
    BenchError,
    Config,
    ServerProcess,
    build_loadgen,
    loadgen_cmd,
    log,
    raise_open_files,
    run_loadgen,
)


@dataclass(frozen=True)
class Case:
    size: int
    threshold: int | None  # None: compression off

    @property
    def label(self) -> str:
        state = "off" if self.threshold is None else f"on (threshold {self.threshold} B)"
        return f"{self.size} B, {state}"


CASES = (
    Case(100, None),
    Case(100, 64),
    Case(2000, None),
    Case(2000, 1024),
)


def run_case(cfg: Config, case: Case, logfile: Any) -> dict[str, Any]:
    extra = ["--pad", "text"]
    if case.threshold is not None:
        extra += ["--compression-threshold", str(case.threshold)]
    srv = ServerProcess(cfg, "wsfleet", logfile, None, extra)
    try:
        args = [
            "-conns",
            str(cfg.s1_clients),
            "-broadcasts",
            str(cfg.s1_broadcasts),
            "-warmup",
            str(cfg.s1_warmup),
            "-size",
            str(case.size),
            "-timeout",
            "90s",
        ]
        if case.threshold is not None:
            args.append("-deflate")
        res = run_loadgen(cfg, loadgen_cmd("fanout", srv, *args), 120, logfile)
    finally:
        srv.stop()
    if not res["complete"] or res["order_errors"]:
        raise BenchError(f"{case.label}: not every message arrived in order: {res}")
    if case.threshold is not None and res["deflate_conns"] != cfg.s1_clients:
        raise BenchError(f"{case.label}: deflate negotiated on {res['deflate_conns']} clients")
    messages = cfg.s1_clients * (cfg.s1_broadcasts + cfg.s1_warmup)
    return {
        "wire_bytes_per_msg": res["wire_bytes"] / messages,
        "msgs_per_s": res["msgs_per_s"],
        "server_cpu_us_per_msg": res["cpu"]["server_cpu_s"] * 1e6 / res["delivered"],
        "p99_ms": res["latency"]["p99_ms"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args(argv)
    cfg = Config(scenarios=["S1"], kinds=["wsfleet"], repeats={"S1": args.repeats})
    cfg.s1_clients = args.clients
    cfg.pin = False
    raise_open_files(cfg.s1_clients * 2 + 256)
    build_loadgen()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with open(RESULTS / "compression.log", "w") as logfile:
        for case in CASES:
            runs = []
            for i in range(args.repeats):
                log(f"{case.label}: run {i + 1}/{args.repeats}")
                runs.append(run_case(cfg, case, logfile))
            row: dict[str, Any] = {"case": case.label, "size": case.size}
            row["threshold"] = case.threshold
            for key in runs[0]:
                row[key] = statistics.median(r[key] for r in runs)
            rows.append(row)
    out = Path(RESULTS / "compression.json")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| broadcast | bytes / msg on the wire | msgs/s | server CPU µs / msg | p99 ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['wire_bytes_per_msg']:.0f} | {r['msgs_per_s']:,.0f} | "
            f"{r['server_cpu_us_per_msg']:.2f} | {r['p99_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
