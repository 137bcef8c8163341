"""Benchmark pontem-async's profiler and metric updates against their peers; run by hand.

    bash bench/run.sh profiler                      # creates bench/.venv, installs, runs all
    bash bench/run.sh profiler --quick              # smoke run
    python bench/bench_profiler.py --only pa,phanos --part profiler

Two tables:

1. **Profiler overhead per profiled call**: pontem-async ``@profile``, ``@phanos.profile`` and
   OpenTelemetry ``tracer.start_as_current_span`` on an empty function, each measured over the
   same function undecorated, in four scenarios (flat async, flat sync, a root with three
   children async and sync).
2. **Metric updates**: ns per counter/histogram/gauge update in pontem-async,
   ``prometheus_client`` and pontem.

Every (library, scenario) pair runs in its own fresh subprocess (``_measure_profiler.py``), one
after another. With ``--rounds`` > 1 the whole list runs again, round-robin, and the median of
the rounds is reported (their spread is in the details), so a burst of load from something
else on the machine hits every library instead of one. The report goes to stdout (Markdown),
progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _measure_profiler import SCENARIOS  # noqa: E402
from _report import load_average, machine, num, run_child, table, versions_of  # noqa: E402
from peers import (  # noqa: E402
    METRIC_PEERS,
    OPS,
    PROFILER_PEERS,
    MetricPeer,
    ProfilerPeer,
    adapter_class,
)

REFERENCE = "pa"
"""The library every ratio is taken against."""
PARTS = ("profiler", "metrics")
SCENARIO_LABELS = {
    "flat-async": "flat async def (awaited in a running loop)",
    "flat-sync": "flat plain function",
    "tree-async": "root + 3 children, async (awaited in sequence)",
    "tree-sync": "root + 3 children, sync",
}
OP_LABELS = {
    "count": "unlabelled counter +1",
    "labels_dict": "2-label counter +1, labels per call",
    "labels_call": "2-label counter +1, .labels(...).inc()",
    "bound": "2-label counter +1, child bound once",
    "observe": "histogram observe (unlabelled)",
    "gauge": "gauge set (unlabelled)",
}
PROFILER_FIFTH, PROFILER_TENTH = 5.0, 10.0
"""Targets: pontem-async's overhead at most 1/5 of phanos' (aim: 1/10), and below OTel's."""
BEFORE = {
    ("phanos", "flat-async"): "≈15.5 µs",
    ("phanos", "tree-async"): "54-68 µs",
    ("otel", "flat-async"): "≈27.5 µs",
    ("otel", "tree-async"): "≈133 µs",
    ("prometheus", "count"): "≈445 ns",
    ("prometheus", "labels_call"): "≈1.55 µs",
    ("pontem", "count"): "≈1.35 µs",
}
"""Numbers measured before this project existed (another machine and day), for orientation."""
READY_CHECK = """
import asyncio
from pontem_async import metrics
from pontem_async.profiler import profile, profiler

@profile
def f():
    return 1

@profile(name="g")
async def g():
    return f()

assert f() == 1 and asyncio.run(g()) == 1
metrics.count("ready")
metrics.counter("ready_c", labels=["a"]).inc(labels={"a": "1"})
metrics.histogram("ready_h", buckets=[1.0]).observe(0.5)
metrics.set_gauge("ready_g", 1)
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    libraries = [*PROFILER_PEERS, *(k for k in METRIC_PEERS if k not in PROFILER_PEERS)]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated libraries, from: {', '.join(libraries)}"
    )
    parser.add_argument(
        "--part", default=",".join(PARTS), help="comma-separated: profiler, metrics (default: both)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"profiler scenarios (default: all of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--ops", default=",".join(OPS), help="metric operations (default: all)")
    parser.add_argument("--rounds", type=int, default=None, help="repeats of every measurement")
    parser.add_argument("--blocks", type=int, default=None, help="timed blocks per measurement")
    parser.add_argument(
        "--pause", type=float, default=0.005, help="profiler: seconds of pause after each block"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds one subprocess may take"
    )
    parser.add_argument(
        "--wait-for-library",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="poll this long for pontem_async.profiler and pontem_async.metrics to work "
        "before skipping pontem-async",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.blocks is None:
        args.blocks = 20 if args.quick else 60
    args.keys = libraries if args.only is None else [k.strip() for k in args.only.split(",")]
    unknown = [k for k in args.keys if k not in libraries]
    if unknown:
        parser.error(f"unknown library(ies) {unknown}; choose from {libraries}")
    args.parts = [p.strip() for p in args.part.split(",")]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",")]
    args.op_list = [o.strip() for o in args.ops.split(",")]
    for given, allowed, what in (
        (args.parts, PARTS, "part"),
        (args.scenario_list, SCENARIOS, "scenario"),
        (args.op_list, OPS, "operation"),
    ):
        bad = [x for x in given if x not in allowed]
        if bad:
            parser.error(f"unknown {what}(s) {bad}; choose from {list(allowed)}")
    return args


# ---------------------------------------------------------------------------- library readiness


def library_ready() -> tuple[bool, str]:
    """Whether pontem-async's profiler and metrics import and work, in a fresh interpreter."""
    with tempfile.TemporaryDirectory(prefix="pontem-ready-") as cwd:  # default handlers' files
        proc = subprocess.run(
            [sys.executable, "-c", READY_CHECK],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
        )
    tail = (proc.stderr or "").strip().splitlines()[-1:]
    return proc.returncode == 0, " ".join(tail)[:300]


def wait_for_library(seconds: float) -> tuple[bool, str]:
    deadline = time.monotonic() + seconds
    while True:
        ready, why = library_ready()
        if ready or time.monotonic() >= deadline:
            return ready, why
        print(f"  pontem-async not ready yet ({why}); polling", file=sys.stderr, flush=True)
        time.sleep(min(20.0, max(0.0, deadline - time.monotonic())))


# ---------------------------------------------------------------------------- running


def _job_params(kind: str, what: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "profile":
        roots = 250 if SCENARIOS[what][1] > 1 else 1000
        return {
            "calls": roots // 5 if args.quick else roots,
            "blocks": args.blocks,
            "pause": args.pause,
            "warmup_blocks": 2 if args.quick else 5,
        }
    return {
        "calls": 1000,
        "blocks": args.blocks * 3,
        "pause": 0.001,
        "warmup_blocks": 5 if args.quick else 20,
    }


def jobs(args: argparse.Namespace, skip: set[str]) -> list[tuple[str, str, str]]:
    """(kind, library, scenario or op) for one round, in report order."""
    out: list[tuple[str, str, str]] = []
    if "profiler" in args.parts:
        for scenario in args.scenario_list:
            for key in PROFILER_PEERS:
                if key in args.keys and key not in skip:
                    out.append(("profile", key, scenario))
    if "metrics" in args.parts:
        for op in args.op_list:
            for key in METRIC_PEERS:
                measured = measured_op(key, op)
                job = ("metric", key, measured or "")
                if key in args.keys and key not in skip and measured and job not in out:
                    out.append(job)
    return out


def measured_op(key: str, op: str) -> str | None:
    """The operation measured for ``op``'s row: ``op`` itself, the library's equivalent, or
    None when the library has neither."""
    cls = metric_class(key)
    return op if op in cls.ops else cls.equivalents.get(op)


def run_one(
    kind: str, key: str, what: str, params: dict[str, Any], root: Path, timeout: float
) -> dict[str, Any]:
    """One measurement in a fresh subprocess: the result dict, or one with an ``error``."""
    return run_child(
        "_measure_profiler.py", [kind, key, what], f"{kind}-{key}-{what}", params, root, timeout
    )


Results = dict[tuple[str, str, str], list[dict[str, Any]]]


def run_all(args: argparse.Namespace, plan: list[tuple[str, str, str]]) -> Results:
    results: Results = {job: [] for job in plan}
    root = Path(tempfile.mkdtemp(prefix="pontem-bench-profiler-"))
    try:
        for round_no in range(1, args.rounds + 1):
            for kind, key, what in plan:
                label = f"round {round_no}/{args.rounds}  {kind} {key} {what}"
                print(f"  {label:<50}", end="", file=sys.stderr, flush=True)
                outcome = run_one(
                    kind, key, what, _job_params(kind, what, args), root, args.timeout
                )
                results[(kind, key, what)].append(outcome)
                value = outcome.get("overhead_ns", outcome.get("ns_per_op"))
                status = outcome.get("error") or f"{value:,.0f} ns"
                print(f" {outcome['wall']:5.1f}s  {status}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------- report


def profiler_class(key: str) -> type[ProfilerPeer]:
    return cast("type[ProfilerPeer]", adapter_class(PROFILER_PEERS[key], ProfilerPeer))


def metric_class(key: str) -> type[MetricPeer]:
    return cast("type[MetricPeer]", adapter_class(METRIC_PEERS[key], MetricPeer))


def combined(runs: list[dict[str, Any]], field: str) -> float | None:
    """Median of ``field`` over the rounds that succeeded (None if none did)."""
    values = [r[field] for r in runs if "error" not in r]
    return statistics.median(values) if values else None


def spread(runs: list[dict[str, Any]], field: str) -> str:
    values = sorted(r[field] for r in runs if "error" not in r)
    if not values:
        return "error"
    if len(values) == 1:
        return num(values[0])
    return f"{num(values[0])} – {num(values[-1])}"


def _ns(value: float | None) -> str:
    if value is None:
        return "error"
    return f"{value / 1000:,.2f} µs" if value >= 10_000 else f"{num(value)} ns"


def paired_ratios(runs: list[dict[str, Any]], reference: list[dict[str, Any]] | None) -> str:
    """``runs``' overhead over the reference library's, round by round (both measured within
    seconds of each other in a round, so a machine that speeds up or slows down between rounds
    moves both): min – median – max."""
    if not reference:
        return ""
    ratios = sorted(
        r["overhead_ns"] / q["overhead_ns"]
        for r, q in zip(runs, reference, strict=False)
        if "error" not in r and "error" not in q and q["overhead_ns"] > 0
    )
    if not ratios:
        return ""
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x"
    return f"{ratios[0]:.2f} – {statistics.median(ratios):.2f} – {ratios[-1]:.2f}x"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference or reference <= 0:
        return "—"
    return f"{value / reference:.2f}x"


def profiler_report(args: argparse.Namespace, results: Results) -> list[str]:
    rows: list[list[str]] = []
    details: list[list[str]] = []
    verdicts: list[bool] = []
    for scenario in args.scenario_list:
        runs = {key: results.get(("profile", key, scenario)) for key in PROFILER_PEERS}
        over = {k: combined(r, "overhead_ns") for k, r in runs.items() if r is not None}
        ref = over.get(REFERENCE)
        first = True
        for key, runs_for_key in runs.items():
            if runs_for_key is None:
                continue
            value = over[key]
            target = ""
            if key == REFERENCE:
                target, met = _profiler_target(value, over.get("phanos"), over.get("otel"))
                if met is not None:
                    verdicts.append(met)
            rows.append(
                [
                    SCENARIO_LABELS[scenario] if first else "",
                    profiler_class(key).label,
                    _ns(value),
                    _ratio(value, ref),
                    target,
                ]
            )
            per_call = combined(runs_for_key, "overhead_per_profiled_call_ns")
            details.append(
                [
                    scenario if first else "",
                    profiler_class(key).label,
                    num(combined(runs_for_key, "plain_ns") or 0),
                    num(combined(runs_for_key, "profiled_ns") or 0),
                    num(per_call) if per_call is not None else "error",
                    f"{num(combined(runs_for_key, 'profiled_p10') or 0)} / "
                    f"{num(combined(runs_for_key, 'profiled_p90') or 0)}",
                    spread(runs_for_key, "overhead_ns"),
                    "" if key == REFERENCE else paired_ratios(runs_for_key, runs.get(REFERENCE)),
                    BEFORE.get((key, scenario), ""),
                ]
            )
            first = False
    if not rows:
        return []
    blocks = args.blocks
    out = [
        "## Profiler overhead per profiled call",
        "",
        f"median ns of a profiled call minus the same call undecorated, same process; "
        f"{blocks} blocks of 1,000 calls (250 root calls in the tree scenarios, whose numbers "
        f"are per root call, i.e. 4 profiled calls), {args.pause * 1000:g} ms pause after each "
        f"block; median of {args.rounds} round(s) in fresh processes"
        + (" (--quick: blocks of 200 / 50)" if args.quick else ""),
        "",
        table(
            ["scenario", "library", "overhead per call", "vs pontem-async", "target"],
            rows,
            align="llrrl",
        ),
        "",
        f"target: pontem-async at most 1/{PROFILER_FIFTH:g} of phanos' overhead (aim "
        f"1/{PROFILER_TENTH:g}) and below opentelemetry-sdk's."
        + (
            f" Met in {sum(verdicts)} of {len(verdicts)} scenario(s)."
            if verdicts
            else " (not evaluated: a library is missing)"
        ),
        "",
        "details (ns):",
        "",
        table(
            [
                "scenario",
                "library",
                "undecorated/call",
                "profiled/call",
                "overhead per profiled fn",
                "overhead p10 / p90",
                "overhead over rounds",
                "x pontem-async, per round (min – median – max)",
                "measured before",
            ],
            details,
            align="llrrrrrrr",
        ),
    ]
    return out


def _profiler_target(
    pa: float | None, phanos: float | None, otel: float | None
) -> tuple[str, bool | None]:
    if pa is None or phanos is None or otel is None:
        return "—", None
    if pa <= 0:
        return "met (no measurable overhead)", True
    fraction = phanos / pa
    met = fraction >= PROFILER_FIFTH and pa < otel
    aim = "aim 1/10 met" if fraction >= PROFILER_TENTH else "aim 1/10 missed"
    text = (
        f"{'met' if met else 'MISSED'}: 1/{fraction:.1f} of phanos ({aim}), "
        f"1/{otel / pa:.1f} of OTel"
    )
    return text, met


def metrics_report(args: argparse.Namespace, results: Results) -> list[str]:
    rows: list[list[str]] = []
    details: list[list[str]] = []
    verdicts: list[bool] = []
    for op in args.op_list:
        runs = {
            key: results.get(("metric", key, measured_op(key, op) or "")) for key in METRIC_PEERS
        }
        values = {k: combined(r, "ns_per_op") for k, r in runs.items() if r is not None}
        ref = values.get(REFERENCE)
        first = True
        for key, runs_for_key in runs.items():
            if runs_for_key is None:
                continue
            value = values[key]
            target = ""
            if key == REFERENCE:
                peers = {k: v for k, v in values.items() if k != REFERENCE}
                target, met = _metric_target(value, peers)
                if met is not None:
                    verdicts.append(met)
            rows.append(
                [
                    OP_LABELS[op] if first else "",
                    metric_class(key).label,
                    f"`{metric_class(key).calls[op]}`"
                    + ("" if measured_op(key, op) == op else " *"),
                    _ns(value),
                    _ratio(value, ref),
                    target,
                ]
            )
            details.append(
                [
                    op if first else "",
                    metric_class(key).label,
                    f"{num(combined(runs_for_key, 'p10') or 0)} / "
                    f"{num(combined(runs_for_key, 'p90') or 0)}",
                    spread(runs_for_key, "ns_per_op"),
                    num(combined(runs_for_key, "loop_ns") or 0, 1),
                    BEFORE.get((key, op), ""),
                ]
            )
            first = False
    if not rows:
        return []
    return [
        "## Metric updates",
        "",
        f"median ns per operation, net of an empty `for` loop over the same values; "
        f"{args.blocks * 3} blocks of 1,000 operations, each after 1 ms of pause; median of "
        f"{args.rounds} round(s) in fresh processes. Labels are literals in the call "
        "(`route`, `code`); a library without a form shows the one its users write instead "
        "(marked *).",
        "",
        table(
            ["operation", "library", "call", "ns/op", "vs pontem-async", "target"],
            rows,
            align="lllrrl",
        ),
        "",
        "\\* the library has no such form; this is the same measurement as that call's own row.",
        "",
        "target: pontem-async below both prometheus_client and pontem."
        + (
            f" Met in {sum(verdicts)} of {len(verdicts)} operation(s)."
            if verdicts
            else " (not evaluated: a library is missing)"
        ),
        "",
        "details (ns):",
        "",
        table(
            ["operation", "library", "p10 / p90", "over rounds", "empty loop", "measured before"],
            details,
            align="llrrrr",
        ),
    ]


def _metric_target(pa: float | None, peers: dict[str, float | None]) -> tuple[str, bool | None]:
    known = {k: v for k, v in peers.items() if v is not None}
    if pa is None or not known:
        return "—", None
    met = all(pa < v for v in known.values())
    against = ", ".join(
        f"{v / pa:.1f}x faster than {metric_class(k).label}"
        if pa < v
        else f"{pa / v:.2f}x slower than {metric_class(k).label}"
        for k, v in known.items()
    )
    return f"{'met' if met else 'MISSED'}: {against}", met


def report(
    args: argparse.Namespace, results: Results, skipped: dict[str, str], elapsed: float
) -> str:
    mach = machine()
    packages: list[str] = []
    for kind, key, _ in results:
        cls: type[Any] = profiler_class(key) if kind == "profile" else metric_class(key)
        packages.extend(cls.packages)
    out = [
        "# pontem-async profiler and metrics benchmark",
        "",
        f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}; {mach['python']}; "
        f"{mach['os']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions_of(packages).items()),
        "",
    ]
    if "profiler" in args.parts:
        out += [*profiler_report(args, results), ""]
    if "metrics" in args.parts:
        out += [*metrics_report(args, results), ""]
    out.append("configurations:")
    seen: set[str] = set()
    for kind, key, _ in results:
        cls = profiler_class(key) if kind == "profile" else metric_class(key)
        name = f"{kind}:{key}"
        if name not in seen:
            seen.add(name)
            out.append(f"- {kind} / {cls.label}: {cls.config}")
    notes: list[str] = [f"- {key} skipped: {why}" for key, why in skipped.items()]
    for (kind, key, what), runs in results.items():
        for i, r in enumerate(runs, 1):
            where = f"{kind} {key} {what} (round {i})"
            if "error" in r:
                notes.append(f"- {where}: {r['error']}")
            elif r.get("stderr_lines"):
                notes.append(
                    f"- {where} wrote {r['stderr_lines']} line(s) to stderr, first: "
                    f"{r['stderr_first']!r}"
                )
            dropped = _dropped(r)
            if dropped:
                notes.append(f"- {where}: library counted drops {dropped}")
    if notes:
        out += ["", "notes:", *notes]
    out += [
        "",
        f"total wall time: {elapsed:.0f} s; load average at the end (1/5/15 min): "
        f"{load_average()} (the runs themselves keep about one core busy; more means something "
        "else ran too, and the numbers above are then less trustworthy)",
    ]
    return "\n".join(out)


def _dropped(result: dict[str, Any]) -> dict[str, Any]:
    stats = result.get("details", {}).get("stats", {})
    drops: dict[str, Any] = {}
    for handler, counters in stats.items():
        for reason, count in (counters.get("dropped") or {}).items():
            if count:
                drops[f"{handler}:{reason}"] = count
    return drops


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    skipped: dict[str, str] = {}
    if REFERENCE in args.keys:
        ready, why = wait_for_library(args.wait_for_library)
        if not ready:
            skipped[REFERENCE] = f"pontem_async.profiler / metrics not usable yet ({why})"
    plan = jobs(args, set(skipped))
    print(f"running {len(plan)} measurement(s) x {args.rounds} round(s)", file=sys.stderr)
    results = run_all(args, plan)
    elapsed = time.perf_counter() - started
    print(report(args, results, skipped, elapsed))
    if args.json is not None:
        payload = {
            "machine": machine(),
            "results": [
                {"kind": kind, "library": key, "what": what, "rounds": runs}
                for (kind, key, what), runs in results.items()
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    failed = any("error" in r for runs in results.values() for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
