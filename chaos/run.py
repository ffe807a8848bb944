"""Run the chaos scenarios and the soak, print the table: ``python -m chaos.run``.

Every process is started here (redis-server, ``wsfleet serve``) on free loopback ports and
stopped by its pid at the end of its scenario. The run is bounded: each scenario has a time
limit, and the soak lasts ``--soak-minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable

from chaos import rolling, scenarios
from chaos.scenarios import Row
from chaos.soak import soak

SCENARIOS: dict[str, Callable[[argparse.Namespace], Awaitable[Row]]] = {
    "flood": lambda o: scenarios.flood_and_stream(o.flood_seconds),
    "redis-kill": lambda o: scenarios.redis_kill_restart(o.outage_seconds),
    "hotplug": lambda o: scenarios.rapid_hotplug(),
    "big-outage": lambda o: scenarios.outage_big_messages(o.big_outage_seconds, 64),
    "restart": lambda o: scenarios.restart_same_name(),
    "rolling": lambda o: rolling.rolling_restart(o.rolling_clients, o.rolling_rate),
}
LIMIT = 180.0
"""Seconds one scenario may take before it is abandoned (reported as failed)."""
LIMITS = {"rolling": 420.0}


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    head = (
        "scenario",
        "load held",
        "faults injected",
        "sent",
        "deliv.",
        "lost",
        "dup.",
        "reord.",
        "p50 ms",
        "p99 ms",
        "RSS MB before/after",
        "ok",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        c = row.counts
        cells = (
            row.scenario,
            row.load,
            row.faults,
            *(str(c.get(k, "-")) for k in ("sent", "delivered", "lost", "duplicated", "reordered")),
            _ms(row.p50_ms),
            _ms(row.p99_ms),
            f"{row.rss_before:.0f} / {row.rss_after:.0f}",
            "yes" if row.ok else "NO",
        )
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.scenario}: {note}" for row in rows for note in row.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


async def main(options: argparse.Namespace) -> int:
    names = [n for n in options.only.split(",") if n] if options.only else list(SCENARIOS)
    rows: list[Row] = []
    for name in names:
        if name == "soak":
            continue
        started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            async with asyncio.timeout(LIMITS.get(name, LIMIT)):
                rows.append(await SCENARIOS[name](options))
        except Exception as exc:  # one broken scenario must not hide the others' figures
            rows.append(Row(name, "-", "-", notes=[f"failed: {exc!r}"], ok=False))
        print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    if options.soak_minutes > 0 and (not options.only or "soak" in names):
        print(f"running soak ({options.soak_minutes:g} min) ...", file=sys.stderr, flush=True)
        row, samples = await soak(options.soak_minutes)
        rows.append(row)
        print("RSS samples (s, node a MB, node b MB):")
        print(", ".join(f"({t:.0f}, {ra:.0f}, {rb:.0f})" for t, ra, rb in samples))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(table(rows))
    return 0 if all(row.ok for row in rows) else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    parser.add_argument(
        "--only", default="", help="comma-separated: " + ",".join([*SCENARIOS, "soak"])
    )
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="0 skips the soak")
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--outage-seconds", type=float, default=5.0)
    parser.add_argument("--big-outage-seconds", type=float, default=20.0)
    parser.add_argument("--rolling-clients", type=int, default=1000)
    parser.add_argument("--rolling-rate", type=float, default=5.0, help="room msgs/s")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
