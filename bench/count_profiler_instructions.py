"""Profiler overhead in CPU instructions per call, counted by valgrind; run by hand.

    bench/.venv/bin/python bench/count_profiler_instructions.py [--only pa,phanos] [--roots 2000]
    bench/.venv/bin/python bench/count_profiler_instructions.py --caller [--only pa]

``bench_profiler.py`` times the overhead; on a shared machine its medians move with whatever
else runs (a 2-core VM here showed the same loop at 6 us and 11 us per call minutes apart).
This counts it instead: ``valgrind --tool=callgrind`` counts the instructions a process
executes, which does not depend on the machine's load (the same run gives the same count
within a fraction of a percent). Each measurement is two fresh processes under valgrind that
do the same set-up, warm-up and shutdown, and then make ``--roots`` calls of the scenario's
root function: one through the library's decorator, one undecorated. The difference, per
root call, is the library's cost, *every* thread included: pontem-async's pipeline consumer and
histogram drains, OpenTelemetry's batch span processor, phanos' synchronous handler all count
(``finish`` flushes them before the process exits). Same scenarios and same library set-ups as
``bench_profiler.py`` (``_measure_profiler.BUILDERS``, ``peers``).

``--caller`` counts the application's own share instead, what the timings measure: only the
instructions executed inside the loop of root calls on the calling thread (the loop runs inside
``functools.reduce``, and callgrind collects only while that C function is on the thread's
stack: ``--collect-atstart=no --toggle-collect=functools_reduce``), with the GC's young objects
frozen first and the GC off during the loop, so the count is the code path's alone and
repeatable to a few instructions. Other threads and work left to the event loop (the consumer,
a scheduled drain) are not counted; for async scenarios the loop drives each coroutine with
``send(None)`` (none of them suspends). It makes 400 root calls by default: fewer than a batch,
so every tree is handed over live, as between requests of a service.

Instructions are not nanoseconds (a cache miss costs more than an add), so this complements the
timings rather than replacing them; the ratios are what it is for.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SCENARIOS = ("flat-sync", "tree-sync", "flat-async", "tree-async")
CALLS_PER_ROOT = {"flat-sync": 1, "flat-async": 1, "tree-sync": 4, "tree-async": 4}


def _drive(coro: Any) -> None:
    """Run a coroutine that never suspends to its end (``--caller``'s async loop)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the scenario's coroutine suspended")


def _caller_loop(fn: Any, roots: int, is_async: bool) -> None:
    """``roots`` calls of ``fn`` inside ``functools.reduce`` (what ``--caller`` collects), the
    GC's survivors frozen and the GC off."""
    gc.collect()
    gc.freeze()
    gc.disable()
    if is_async:
        functools.reduce(lambda acc, _: _drive(fn()), range(roots), None)
    else:
        functools.reduce(lambda acc, _: fn(), range(roots), None)
    gc.enable()


def child(key: str, scenario: str, roots: int, profiled: bool, caller: bool) -> None:
    """One process's work: set up ``key``, build both functions, warm both up, then call one
    of them ``roots`` times and shut down."""
    from _measure_profiler import BUILDERS, _identity
    from peers import PROFILER_PEERS, ProfilerPeer, adapter_class

    peer = cast(type[ProfilerPeer], adapter_class(PROFILER_PEERS[key], ProfilerPeer))()
    if scenario.endswith("async"):

        async def main() -> None:
            peer.setup()
            plain = BUILDERS[scenario](_identity)
            decorated = BUILDERS[scenario](peer.decorate)
            for _ in range(300):
                await plain()
                await decorated()
            fn = decorated if profiled else plain
            if caller:
                await asyncio.sleep(0.2)  # the consumer catches up with the warm-up
                _caller_loop(fn, roots, True)
            else:
                for _ in range(roots):
                    await fn()
            await peer.afinish()

        asyncio.run(main())
    else:
        peer.setup()
        plain = BUILDERS[scenario](_identity)
        decorated = BUILDERS[scenario](peer.decorate)
        for _ in range(300):
            plain()
            decorated()
        fn = decorated if profiled else plain
        if caller:
            time.sleep(0.2)
            _caller_loop(fn, roots, False)
        else:
            for _ in range(roots):
                fn()
        peer.finish()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: its cost differs with what is left alive


def count(key: str, scenario: str, roots: int, profiled: bool, caller: bool) -> int:
    """Instructions of one child process under callgrind (all threads, or with ``caller``
    only those of the loop of root calls)."""
    only_loop = ["--collect-atstart=no", "--toggle-collect=functools_reduce"] if caller else []
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        *only_loop,
        sys.executable,
        __file__,
        "--child",
        key,
        scenario,
        str(roots),
        ("profiled" if profiled else "plain") + ("-caller" if caller else ""),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{key} {scenario}: valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="pa,phanos,otel", help="libraries (keys of peers)")
    parser.add_argument(
        "--roots", type=int, help="root calls counted (default 2000; 400 with --caller)"
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--caller",
        action="store_true",
        help="count only the calling thread's loop of root calls (see the module docstring)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        key, scenario, roots, mode = args.child
        child(key, scenario, int(roots), mode.startswith("profiled"), mode.endswith("-caller"))
        return
    if args.roots is None:
        args.roots = 400 if args.caller else 2000
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    keys = args.only.split(",")
    scenarios = args.scenarios.split(",")
    jobs = [(k, s, p) for s in scenarios for k in keys for p in (True, False)]
    what = "the calling thread's loop only" if args.caller else "all threads"
    print(
        f"counting {len(jobs)} processes under callgrind ({args.roots:,} root calls each, "
        f"{what})..."
    )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        counted = dict(
            zip(
                jobs,
                pool.map(lambda job: count(job[0], job[1], args.roots, job[2], args.caller), jobs),
                strict=True,
            )
        )
    print()
    print(
        "| scenario   | library           | instructions per root call | per profiled call | "
        "x pontem-async |"
    )
    print(
        "|------------|-------------------|---------------------------:|------------------:|"
        "---------------:|"
    )
    for scenario in scenarios:
        per_root: dict[str, float] = {
            k: (counted[(k, scenario, True)] - counted[(k, scenario, False)]) / args.roots
            for k in keys
        }
        base = per_root.get("pa")
        for k in keys:
            ratio = "" if base is None else f"{per_root[k] / base:.2f}x"
            label = _label(k)
            calls = CALLS_PER_ROOT[scenario]
            print(
                f"| {scenario:<10} | {label:<17} | {per_root[k]:>26,.0f} | "
                f"{per_root[k] / calls:>17,.0f} | {ratio:>14} |"
            )


def _label(key: str) -> str:
    from peers import PROFILER_PEERS, ProfilerPeer, adapter_class

    cls: Any = adapter_class(PROFILER_PEERS[key], ProfilerPeer)
    return str(cls.label)


if __name__ == "__main__":
    main()
