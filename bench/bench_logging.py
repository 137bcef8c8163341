"""Benchmark pontem-async's logging against its peers; run by hand, never by the test suite.

    bash bench/run.sh                      # creates bench/.venv, installs, runs everything
    python bench/bench_logging.py --quick  # in an environment that already has the peers
    python bench/bench_logging.py --only pa,structlog --n 100000

For every peer and every measurement (``latency``, ``throughput``, ``rss``; see
``_measure.py`` and README.md) it starts a fresh subprocess, so memory, threads and import
state never leak from one into the next, and runs them one after another (the machine has few
cores: running them side by side would measure the scheduler). Record files go to a temporary
directory that is removed at the end. The report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from _report import load_average, machine, num, run_child, table, versions_of  # noqa: E402
from peers import PEERS, peer_class  # noqa: E402

MEASUREMENTS = ("latency", "throughput", "rss")
REFERENCE = "pa"
"""The row every ns/call ratio is taken against."""
RSS_SKIPPED_BY_DEFAULT = {
    "aiologger": "one asyncio Task per record and ~5k records/s: a 1M burst needs minutes "
    "and GBs; its RSS growth over the throughput run is in the details table",
}
HANDLER_MODULE = REPO_DIR / "pontem_async" / "handlers" / "file.py"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--n", type=int, default=None, help="records in the throughput run")
    parser.add_argument("--rss-n", type=int, default=None, help="records in the RSS burst")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated peers, from: {', '.join(PEERS)}"
    )
    parser.add_argument(
        "--measure",
        default=",".join(MEASUREMENTS),
        help="comma-separated measurements (default: all)",
    )
    parser.add_argument(
        "--rss-all",
        action="store_true",
        help="also run the RSS burst for " + ", ".join(RSS_SKIPPED_BY_DEFAULT),
    )
    parser.add_argument("--blocks", type=int, default=None, help="latency: timed blocks")
    parser.add_argument("--block", type=int, default=1000, help="latency: calls per block")
    parser.add_argument(
        "--pause", type=float, default=0.005, help="latency: seconds of pause after each block"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds one subprocess may take"
    )
    parser.add_argument(
        "--wait-for-handler",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="poll this long for the real RotatingFileHandler before skipping pontem-async",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 20_000 if args.quick else 200_000
    if args.rss_n is None:
        args.rss_n = 100_000 if args.quick else 1_000_000
    if args.blocks is None:
        args.blocks = 30 if args.quick else 200
    keys = list(PEERS) if args.only is None else [k.strip() for k in args.only.split(",")]
    unknown = [k for k in keys if k not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {list(PEERS)}")
    args.keys = keys
    args.measurements = [m.strip() for m in args.measure.split(",")]
    bad = [m for m in args.measurements if m not in MEASUREMENTS]
    if bad:
        parser.error(f"unknown measurement(s) {bad}; choose from {list(MEASUREMENTS)}")
    return args


# ---------------------------------------------------------------------------- environment


def versions(keys: Sequence[str]) -> dict[str, str]:
    return versions_of(name for key in keys for name in peer_class(key).packages)


def handler_ready() -> bool:
    try:
        return "PLACEHOLDER" not in HANDLER_MODULE.read_text(encoding="utf-8")
    except OSError:
        return False


def wait_for_handler(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not handler_ready():
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
    return True


# ---------------------------------------------------------------------------- running


def params_for(measurement: str, args: argparse.Namespace) -> dict[str, Any]:
    common = {"chunk": 1000}
    if measurement == "latency":
        warmup = 2_000 if args.quick else 20_000
        return {
            **common,
            "block": args.block,
            "blocks": args.blocks,
            "warmup": warmup,
            "pause": args.pause,
        }
    if measurement == "throughput":
        return {**common, "n": args.n}
    return {**common, "n": args.rss_n}


def run_one(
    key: str, measurement: str, params: dict[str, Any], root: Path, timeout: float
) -> dict[str, Any]:
    """One measurement of one peer in a fresh subprocess; the result dict, or an error."""
    return run_child(
        "_measure.py", [key, measurement], f"{key}-{measurement}", params, root, timeout
    )


def run_all(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {key: {} for key in keys}
    root = Path(tempfile.mkdtemp(prefix="pontem-bench-"))
    try:
        for key in keys:
            for measurement in args.measurements:
                if measurement == "rss" and key in RSS_SKIPPED_BY_DEFAULT and not args.rss_all:
                    results[key]["rss"] = {"skipped": RSS_SKIPPED_BY_DEFAULT[key]}
                    continue
                label = f"{peer_class(key).label} / {measurement}"
                print(f"  {label:<40}", end="", file=sys.stderr, flush=True)
                outcome = run_one(
                    key, measurement, params_for(measurement, args), root, args.timeout
                )
                results[key][measurement] = outcome
                status = outcome.get("error", "ok")
                print(f" {outcome['wall']:6.1f}s  {status}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------- report


def _cell(result: dict[str, Any] | None, render: Any) -> str:
    if result is None:
        return "—"
    if "skipped" in result:
        return "skipped"
    if "error" in result:
        return "error"
    return str(render(result))


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    skipped_rows: dict[str, str],
    elapsed: float,
) -> str:
    ref = results.get(REFERENCE, {}).get("latency", {})
    ref_ns = ref.get("ns_per_call") if "error" not in ref else None

    def ratio(r: dict[str, Any]) -> str:
        return f"{r['ns_per_call'] / ref_ns:.2f}x" if ref_ns else "—"

    def on_disk(r: dict[str, Any]) -> str:
        text = f"{r['on_disk_pct']:.1f} %"
        return text + (" *" if r["duplicates"] or r["unparsable"] else "")

    main_rows: list[list[str]] = []
    detail_rows: list[list[str]] = []
    for key, res in results.items():
        label = peer_class(key).label
        lat, thr, rss = res.get("latency"), res.get("throughput"), res.get("rss")
        main_rows.append(
            [
                label,
                _cell(lat, lambda r: num(r["ns_per_call"])),
                _cell(lat, ratio),
                _cell(thr, lambda r: num(r["records_per_s"])),
                _cell(thr, on_disk),
                _cell(rss, lambda r: num(r["peak_rss_mib"], 1)),
            ]
        )
        detail_rows.append(
            [
                label,
                _cell(lat, lambda r: f"{num(r['p10'])} / {num(r['p90'])}"),
                _cell(thr, lambda r: num(r["n"] / r["emit_seconds"])),
                _cell(thr, lambda r: f"{r['finish_seconds'] + r['fsync_seconds']:.2f}"),
                _cell(thr, lambda r: f"{num(r['lines'])} / {r['duplicates']} / {r['unparsable']}"),
                _cell(thr, lambda r: num(r["rss_mib"], 1)),
                _cell(rss, lambda r: f"{r['seconds']:.1f}"),
            ]
        )
    for key, why in skipped_rows.items():
        main_rows.append([peer_class(key).label, why, "", "", "", ""])

    mach = machine()
    out = [
        "# pontem-async logging benchmark",
        "",
        f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}; {mach['python']}; "
        f"{mach['os']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions(list(results)).items()),
        f"sizes: latency {args.blocks} blocks x {args.block:,} calls (pause {args.pause * 1000:g}"
        f" ms after each), throughput N={args.n:,}, RSS burst {args.rss_n:,} records"
        + (" (--quick)" if args.quick else ""),
        "",
        table(
            [
                "peer",
                "ns/call (median)",
                "vs pontem-async",
                "records/s durable",
                "on disk",
                f"peak RSS MiB ({args.rss_n:,})",
            ],
            main_rows,
        ),
        "",
        "* duplicated or unparsable lines on disk (see details)",
        "",
        "details:",
        "",
        table(
            [
                "peer",
                "ns/call p10 / p90",
                "emit-only records/s",
                "finish+fsync s",
                "lines / dup / bad",
                f"RSS MiB ({args.n:,})",
                "RSS burst s",
            ],
            detail_rows,
        ),
        "",
        "configurations:",
    ]
    for key in results:
        cls = peer_class(key)
        out.append(f"- {cls.label}: {cls.config}")
    notes: list[str] = []
    for key, res in results.items():
        label = peer_class(key).label
        for measurement, r in res.items():
            if "error" in r:
                notes.append(f"- {label} / {measurement}: {r['error']}")
            elif "skipped" in r:
                notes.append(f"- {label} / {measurement} skipped: {r['skipped']}")
            elif r.get("stderr_lines"):
                notes.append(
                    f"- {label} / {measurement} wrote {r['stderr_lines']} line(s) to stderr, "
                    f"first: {r['stderr_first']!r}"
                )
            dropped = _dropped(r)
            if dropped:
                notes.append(f"- {label} / {measurement}: library counted drops {dropped}")
    if notes:
        out += ["", "notes:", *notes]
    load = load_average()
    out += [
        "",
        f"total wall time: {elapsed:.0f} s; load average at the end (1/5/15 min): {load} "
        "(the runs themselves keep about one core busy; more means something else ran too)",
    ]
    return "\n".join(out)


def _dropped(result: dict[str, Any]) -> dict[str, Any]:
    stats = result.get("details", {}).get("stats", {})
    drops: dict[str, Any] = {}
    for handler, counters in stats.items():
        for reason, count in counters.get("dropped", {}).items():
            drops[f"{handler}:{reason}"] = count
    return drops


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    keys = list(args.keys)
    skipped_rows: dict[str, str] = {}
    pa_keys = [k for k in keys if k.startswith("pa")]
    if pa_keys and not wait_for_handler(args.wait_for_handler):
        for key in pa_keys:
            keys.remove(key)
            skipped_rows[key] = "skipped: RotatingFileHandler is still a placeholder"
    print(f"running {len(keys)} peer(s): {', '.join(keys)}", file=sys.stderr)
    results = run_all(args, keys)
    elapsed = time.perf_counter() - started
    print(report(args, results, skipped_rows, elapsed))
    if args.json is not None:
        payload = {"machine": machine(), "versions": versions(keys), "results": results}
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    failed = any("error" in r for res in results.values() for r in res.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
