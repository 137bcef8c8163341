"""Benchmark numeric series (``pa.metrics.series``) against logging the same points one call at
a time; run by hand.

    bash bench/run.sh series                 # creates bench/.venv, installs, runs all (~2 min)
    bash bench/run.sh series --quick         # smoke run
    python bench/bench_series.py --only numpy,point-series --rounds 3

The workload is a training loop's: 1,024 series (one metric, a ``series`` label) × 100 float64
points per call, with the rotating file handler active. Ways of logging it:

- ``numpy``: one ``pa.metrics.series`` call per series and round, values a NumPy row;
- ``list``: the same with a Python list of floats;
- ``point-series``: ``pa.metrics.series`` with one point per call (every point on disk);
- ``point-log``: one ``log.info("loss", series=, step=, value=)`` per point (every point on disk);
- ``point-gauge``: one gauge ``set`` per point, the fastest metric update pontem-async has
  (aggregated: only each series' last value reaches the file, at export);
- ``otel-gauge``: the OpenTelemetry SDK's synchronous gauge, one ``set`` per point, exported to
  a file by a ``PeriodicExportingMetricReader`` (also only the last values).

Two measurements per way, each in a fresh subprocess (``_measure_series.py``): **caller cost
per point** (median over timed blocks of 1,000 calls, the consumer idle at the start of each)
and **points/s end to end** (rounds as fast as possible, until everything is written to
the file: the flush is inside the clock), with the points on disk counted afterwards. With
``--rounds`` > 1 everything runs again, round-robin, and medians are reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _measure_series import PER_ROUND, SCENARIOS  # noqa: E402
from _report import load_average, machine, num, run_child, table, versions_of  # noqa: E402

TARGET = 5_000_000
"""Points per second from NumPy, end to end with the file handler."""
REFERENCE = "numpy"
PER_POINT = ("point-series", "point-log", "point-gauge", "otel-gauge")
FULL_ROUNDS = {"numpy": 40, "list": 20}
"""Rounds (×102,400 points) in the throughput run; per-point ways run 3 (--quick: a fifth)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated ways, from: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--rounds", type=int, default=None, help="repeats of everything")
    parser.add_argument(
        "--blocks", type=int, default=None, help="timed blocks of 1,000 calls for caller cost"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per subprocess")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = parser.parse_args(argv)
    args.keys = list(SCENARIOS) if args.only is None else [k.strip() for k in args.only.split(",")]
    unknown = [k for k in args.keys if k not in SCENARIOS]
    if unknown:
        parser.error(f"unknown way(s) {unknown}; choose from {list(SCENARIOS)}")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.blocks is None:
        args.blocks = 10 if args.quick else 40
    return args


def params(key: str, measurement: str, args: argparse.Namespace) -> dict[str, Any]:
    if measurement == "latency":
        return {"blocks": args.blocks}
    rounds = FULL_ROUNDS.get(key, 3)
    if args.quick:
        rounds = max(1, rounds // 5)
    return {"rounds": rounds}


Results = dict[tuple[str, str], list[dict[str, Any]]]


def run_all(args: argparse.Namespace) -> Results:
    plan = [(key, m) for key in args.keys for m in ("latency", "throughput")]
    results: Results = {job: [] for job in plan}
    root = Path(tempfile.mkdtemp(prefix="pontem-bench-series-"))
    try:
        for round_no in range(1, args.rounds + 1):
            for key, measurement in plan:
                label = f"round {round_no}/{args.rounds}  {key} {measurement}"
                print(f"  {label:<42}", end="", file=sys.stderr, flush=True)
                outcome = run_child(
                    "_measure_series.py",
                    [key, measurement],
                    f"{key}-{measurement}",
                    params(key, measurement, args),
                    root,
                    args.timeout,
                )
                results[(key, measurement)].append(outcome)
                if "error" in outcome:
                    status = outcome["error"]
                elif measurement == "latency":
                    status = f"{outcome['ns_per_point']:,.1f} ns/point"
                else:
                    status = f"{outcome['points_per_s']:,.0f} points/s"
                print(f" {outcome['wall']:5.1f}s  {status}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def median(runs: list[dict[str, Any]] | None, field: str) -> float | None:
    values = [r[field] for r in runs or [] if "error" not in r]
    return statistics.median(values) if values else None


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:,.1f}x"


def _on_disk(runs: list[dict[str, Any]] | None) -> str:
    ok = [r for r in runs or [] if "error" not in r]
    if not ok:
        return "error"
    last = ok[-1]
    share = 100.0 * last["on_disk"] / last["points"]
    text = f"{share:.1f} %" if last["keeps_every_point"] else f"{share:.2f} % (last values)"
    return text


def report(args: argparse.Namespace, results: Results, elapsed: float) -> str:
    mach = machine()
    cost = {k: median(results.get((k, "latency")), "ns_per_point") for k in args.keys}
    rate = {k: median(results.get((k, "throughput")), "points_per_s") for k in args.keys}
    rows: list[list[str]] = []
    for key in args.keys:
        scenario = SCENARIOS[key]
        rows.append(
            [
                scenario.label,
                f"`{scenario.call}`",
                f"{cost[key]:,.1f}" if cost[key] is not None else "error",
                _ratio(cost[key], cost.get(REFERENCE)),
                num(rate[key]) if rate[key] is not None else "error",
                _ratio(rate.get(REFERENCE), rate[key]) if key != REFERENCE else "1.0x",
                _on_disk(results.get((key, "throughput"))),
            ]
        )
    details: list[list[str]] = []
    for key in args.keys:
        runs = results.get((key, "throughput"))
        ok = [r for r in runs or [] if "error" not in r]
        if not ok:
            continue
        last = ok[-1]
        details.append(
            [
                key,
                num(last["points"]),
                f"{median(runs, 'call_seconds') or 0:.3f}",
                f"{median(runs, 'flush_seconds') or 0:.3f}",
                num(median(runs, "durable_points_per_s") or 0),
                f"{last['bytes'] / 1e6:,.1f}",
                ", ".join(f"{r['points_per_s']:,.0f}" for r in ok),
            ]
        )
    out = [
        "# pontem-async numeric series benchmark",
        "",
        f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}; {mach['python']}; "
        f"{mach['os']}",
        "versions: "
        + ", ".join(
            f"{k} {v}"
            for k, v in versions_of(
                ["pontem-async", "orjson", "numpy", "opentelemetry-sdk"]
            ).items()
        ),
        "",
        f"workload: 1,024 series × 100 float64 points per call ({num(PER_ROUND)} points per "
        "round), file handler active (RotatingFileHandler, overflow='block'); "
        f"median of {args.rounds} run(s) in fresh processes.",
        "",
        table(
            [
                "way",
                "call",
                "caller ns/point",
                "vs NumPy",
                "points/s end to end",
                "NumPy is",
                "on disk",
            ],
            rows,
            align="llrrrrr",
        ),
        "",
        "caller ns/point: median over timed blocks of 1,000 calls of the time spent in the "
        "calls ÷ points logged, the consumer idle at the start of each block. points/s end "
        "to end: from the first call until the handler has written everything (flush "
        "included). NumPy is: how many times the NumPy path's points/s. Gauges keep only "
        "each series' last value, so their points/s counts updates, not points delivered.",
    ]
    reference = rate.get(REFERENCE)
    if reference is not None:
        met = "met" if reference >= TARGET else "MISSED"
        per_point = {
            k: rate[k] for k in PER_POINT if rate.get(k) and SCENARIOS[k].keeps_every_point
        }
        against = ", ".join(
            f"{reference / v:,.1f}x {SCENARIOS[k].label}" for k, v in per_point.items() if v
        )
        tail = f"; vs per point: {against}." if against else "."
        out += [
            "",
            f"target: ≥ {num(TARGET)} points/s from NumPy: {met} ({num(reference)} points/s, "
            f"{reference / TARGET:.2f}x the target){tail} Gauges (pontem-async's and "
            "OpenTelemetry's) keep only each series' last value: they are compared per update "
            "in the table, not counted as delivering the points.",
        ]
    out += [
        "",
        "details (throughput runs):",
        "",
        table(
            ["way", "points", "call s", "flush s", "durable points/s", "MB", "points/s per run"],
            details,
        ),
        "",
        "configurations:",
        *(f"- {SCENARIOS[k].label}: {SCENARIOS[k].config}" for k in args.keys),
    ]
    notes = [
        f"- {key} {measurement} (run {i}): {r['error']}"
        for (key, measurement), runs in results.items()
        for i, r in enumerate(runs, 1)
        if "error" in r
    ]
    if notes:
        out += ["", "errors:", *notes]
    out += [
        "",
        f"total wall time: {elapsed:.0f} s; load average at the end (1/5/15 min): {load_average()}",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"running {len(args.keys) * 2} measurement(s) x {args.rounds} round(s)", file=sys.stderr)
    results = run_all(args)
    print(report(args, results, time.perf_counter() - started))
    if args.json is not None:
        payload = {
            "machine": machine(),
            "results": [
                {"way": key, "measurement": m, "runs": runs} for (key, m), runs in results.items()
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return 1 if any("error" in r for runs in results.values() for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
