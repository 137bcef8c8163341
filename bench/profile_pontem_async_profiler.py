"""Where a pontem-async ``@profile`` call's time goes; run by hand.

    bench/.venv/bin/python bench/profile_pontem_async_profiler.py [--n 100000] [--cprofile]

Each section runs in its own fresh process.

1. A flat profiled plain function in a synchronous program, three ways: with the pipeline's
   loop thread stalled (a callback waits on an event, so the call only builds and enqueues,
   with no GIL contention: the caller's own cost); in blocks with pauses (as
   ``bench_profiler.py`` measures); and back to back with the consumer running (sustained
   load: the consumer thread's work then lands on the caller through the GIL).
2. The same call taken apart: each step of the wrapper timed on its own with ``timeit``,
   using the library's internal functions (``pontem_async._calltree``, the profiler's compiled
   state). The steps add up to roughly the caller's cost of 1.
3. The pipeline consumer's cost per profile record on the loop (the work the benchmark's
   pauses absorb).
4. The cyclic GC's share: a flat ``async def`` in blocks with pauses, with the GC as is, after
   ``gc.freeze()`` and disabled, and the GC-tracked objects a call keeps alive until the
   consumer takes its record (they are what makes collections frequent).
5. ``--cprofile``: also a cProfile of the caller (proportions, not totals: profiling inflates every
   Python call) and the number of Python-level calls one profiled call makes.

It reads private names of the library on purpose (as ``profile_pontem_async.py`` does); when a
step's internals are renamed it prints ``n/a`` for that step instead of failing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import inspect
import pstats
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers.prof_pa import null_handler

import pontem_async as pa
from pontem_async.profiler import profile, profiler


def _ns(stmt: str | Callable[[], Any], env: dict[str, Any], number: int = 100_000) -> float:
    best = min(timeit.repeat(stmt, globals=env, number=number, repeat=5))
    return best / number * 1e9


def _blocks(fn: Callable[[], Any], calls: int, blocks: int, pause: float) -> float:
    per_call: list[float] = []
    for _ in range(blocks):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter_ns() - t0) / calls)
        time.sleep(pause)
    return statistics.median(per_call)


def leaf() -> None:
    return None


def _floor_wrapper(func: Callable[..., Any]) -> Callable[..., Any]:
    """The shape of pontem-async's sync wrapper with nothing profiled: closure, ``*args``,
    a state read, ``try``/``except``/``finally``. The floor of any pure-Python decorator."""
    state = profiler

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = state._state
        if not st.enabled:
            return func(*args, **kwargs)
        result = error = None
        try:
            result = func(*args, **kwargs)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            error = None  # noqa: F841 - mirrors the library's wrapper

    return wrapper


def sync_section(n: int) -> None:
    tel = pa.init(
        service_name="bench",
        handlers=[null_handler()],
        install_signal_handlers=False,
        queue_size=4_000_000,  # the timed steps below submit about a million records
    )
    profiled = profile(leaf)
    floor = _floor_wrapper(leaf)
    for _ in range(1000):
        profiled()
    tel.flush_sync()
    loop = tel._pipeline.loop
    assert loop is not None
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait)  # stall the pipeline's loop thread
    time.sleep(0.05)
    gc.collect()
    env: dict[str, Any] = {"leaf": leaf, "profiled": profiled, "floor": floor}
    plain_ns = _ns("leaf()", env)
    stalled_ns = _ns("profiled()", env, number=n // 5) - plain_ns
    floor_ns = _ns("floor()", env) - plain_ns
    steps = _steps(tel, plain_ns)
    release.set()
    tel.flush_sync()
    time.sleep(0.2)
    paused_ns = _blocks(profiled, 1000, 100, 0.005) - _blocks(leaf, 1000, 100, 0.0)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        profiled()
    sustained_ns = (time.perf_counter_ns() - t0) / n - plain_ns
    tel.flush_sync()
    print("1. flat profiled plain function, synchronous program (ns over the plain call)")
    print(f"   plain call itself:                                {plain_ns:8,.0f}")
    print(f"   consumer stalled (the caller's own work):         {stalled_ns:8,.0f}")
    print(f"   blocks of 1,000 + 5 ms pauses (bench_profiler):   {paused_ns:8,.0f}")
    print(f"   back to back, consumer running ({n:,} calls): {sustained_ns:8,.0f}")
    print(f"   a do-nothing wrapper of the same shape (floor):   {floor_ns:8,.0f}")
    print()
    print("2. the caller's work, step by step (timeit, best of 5; ns per step)")
    total = 0.0
    for label, value in steps:
        shown = "n/a" if value is None else f"{value:8,.0f}"
        print(f"   {label:<62} {shown:>8}")
        total += value or 0.0
    print(f"   {'sum of the steps':<62} {total:8,.0f}   (measured whole: {stalled_ns:,.0f};")
    print("   the rest is glue: the leave() call, attribute loads, branches, GC)")
    for label, value in _SUBSTEPS:
        if value is not None:  # None: that part does not exist in this version
            print(f"   {label:<62} {value:8,.0f}")
    child_steps(tel)
    tel.shutdown_sync(timeout=60)


def _steps(tel: Any, plain_ns: float) -> list[tuple[str, float | None]]:
    """Each step of one flat root call, timed alone (the consumer is stalled)."""
    steps: list[tuple[str, float | None]] = []

    def step(label: str, stmt: str, env: dict[str, Any], minus: float = 0.0) -> None:
        try:
            steps.append((label, max(0.0, _ns(stmt, env) - minus)))
        except Exception as exc:  # internals renamed: say so, keep going
            steps.append((f"{label} ({type(exc).__name__})", None))

    floor = _floor_wrapper(leaf)
    step("wrapper frame, *args/**kwargs, try/finally", "floor()", {"floor": floor}, plain_ns)
    var: ContextVar[Any] = ContextVar("bench", default=None)
    step("ContextVar get + set + reset", "v.get(); v.reset(v.set(1))", {"v": var})
    try:
        from pontem_async import _calltree as ct

        st = profiler._state
        env: dict[str, Any] = {"ct": ct, "st": st, "tel": tel, "attrs": {}}
        if hasattr(ct, "_running"):  # roots register in a dict that finish_root empties again
            pop_ns = _ns("ct._running.pop('x', None)", env)
            opened = "ct._running.pop(ct.open_root('bench:leaf', attrs).trace_id, None)"
            open_ns = _ns(opened, env) - pop_ns
        else:
            open_ns = _ns("ct.open_root('bench:leaf', attrs)", env)
        steps.append(("open_root: ids from the pool, node, clock", open_ns))
        sub = [
            ("  of which: trace id + span id (pool pops, amortized refills)", _ids_ns(ct)),
            ("  of which: Trace()", _maybe_ns("ct.Trace('0' * 32, 0)", env)),
            ("  of which: the node (a list; before: a slots object)", _node_ns(ct, env)),
            ("  of which: perf_counter_ns() (wall clock: once a ms)", _ns("ct._perf_ns()", env)),
        ]
        env["node"] = ct.open_root("bench:leaf", {})
        step("perf_counter_ns at the end", "ct._perf_ns()", env)
        if hasattr(st, "time_series"):  # durations wait on their path, counted in batches
            env["durations"] = []
            step("time_profiler: the call appends its duration", "durations.append(1_000)", env)
            sub.append(("  then counting it in a batch of 256 (drain), per call", _drain_ns(st)))
        else:
            series = st.time_cell("bench:leaf", False)[2]
            env["series"] = series
            step(
                "time_profiler series lookup + observe(ms)",
                "st.time_ok.get('x'); series.observe(0.001)",
                env,
            )
        env["record"] = _one_record(tel)
        submit_ns = _maybe_ns("tel._submit(record)", env)
        if hasattr(ct, "finish_root"):  # close + record + submit in one function
            step(
                "finish_root: duration, freeze, ProfileRecord, submit",
                "ct.finish_root(node, 0, None, tel)",
                env,
            )
        else:
            step("close_root (lock, duration)", "ct.close_root(node, 0, None)", env)
            step("ProfileRecord + telemetry._submit", "ct.emit(node, 0, tel)", env)
        sub.append(("  of which: telemetry._submit(record) (pipeline, queue append)", submit_ns))
        if hasattr(st, "stale"):
            step("State.stale() after the root", "st.stale()", env)
        _SUBSTEPS[:] = sub
    except Exception as exc:
        steps.append((f"library internals not found ({type(exc).__name__}: {exc})", None))
    return steps


_SUBSTEPS: list[tuple[str, float | None]] = []
"""Parts of some steps, printed under them (not added to the sum)."""


def _one_record(tel: Any) -> Any:
    """The ProfileRecord one flat root call submits, caught on its way to the pipeline."""
    from pontem_async.testing import capture

    with capture(tel) as caught:  # (the profiler hands records to the lanes directly otherwise)
        profile(leaf)()
    return caught.records[0]


def _maybe_ns(stmt: str, env: dict[str, Any]) -> float | None:
    try:
        return _ns(stmt, env)
    except Exception:  # gone from this version of the library
        return None


def _ids_ns(ct: Any) -> float | None:
    stmt = (
        "try:\n    ct._pop_trace_id()\nexcept IndexError:\n    ct._refill(ct._trace_ids, 32)\n"
        "try:\n    ct._pop_span_id()\nexcept IndexError:\n    ct._new_span_id()\n"
    )
    try:
        return _ns(stmt, {"ct": ct})
    except Exception:
        return None


def _node_ns(ct: Any, env: dict[str, Any]) -> float | None:
    if hasattr(ct, "ROOT_FIELDS"):  # nodes are lists: the literal the wrappers build
        return _ns("['n', None, 't', None, 2, None, None, attrs]", env)
    try:
        return _ns("ct.Node('n', 's', 't', None, attrs, 2)", env)
    except Exception:
        try:
            return _ns("ct.Node('n', 's', None, attrs, None, 1, 2)", env)
        except Exception:
            return None


def _drain_ns(st: Any) -> float | None:
    """A batch of 256 durations on one path, counted by the profiler's drain, per duration."""
    try:
        from pontem_async._profile_times import PathTimes

        times = profiler._times
        path = PathTimes("bench:leaf")

        def batch() -> None:
            path.durations.extend(range(1_000, 257_000, 1_000))
            path.listed = True
            times.waiting.append(path)
            times.drain()

        return _ns(batch, {}, number=2_000) / 256
    except Exception:
        return None


def async_section(n: int) -> None:
    """The consumer's cost per record on the loop: a burst of ``n`` profiled calls with the
    consumer idle (it only runs when the caller yields), then the time ``flush()`` takes."""

    @profile
    async def aleaf() -> None:
        return None

    async def main() -> float:
        tel = pa.init(
            service_name="bench",
            handlers=[null_handler()],
            install_signal_handlers=False,
            queue_size=n + 10,
        )
        for _ in range(1000):
            await aleaf()
        await tel.flush()
        for _ in range(n):
            await aleaf()
        t0 = time.perf_counter_ns()
        await tel.flush()
        drain = (time.perf_counter_ns() - t0) / n
        await tel.shutdown(timeout=60)
        return drain

    drain_ns = asyncio.run(main())
    print("3. the pipeline's consumer on the loop (what the pauses between blocks absorb)")
    print(f"   drain of a {n:,}-record burst to a do-nothing handler:  {drain_ns:8,.0f} ns/record")
    print()


def child_steps(tel: Any) -> None:
    """What a child call adds: open_child, close_child, the children list append."""
    try:
        from pontem_async import _calltree as ct

        env: dict[str, Any] = {"ct": ct, "attrs": {}, "paths": {}}
        root = ct.open_root("bench:root", {})
        env["root"] = root
        if "paths" in inspect.signature(ct.open_child).parameters:  # child paths cached per site
            args = "root, 'leaf', paths, attrs"
            env["child"] = ct.open_child(root, "leaf", {}, {})
        else:
            args = "root, 'leaf', attrs"
            env["child"] = ct.open_child(root, "leaf", {})
        clear = (
            "del root[ct.ROOT_FIELDS:]" if hasattr(ct, "ROOT_FIELDS") else "root.children.clear()"
        )
        open_ns = _ns(f"ct.open_child({args}); {clear}", env)
        close_ns = _ns("ct.close_child(child, 1, None)", env)
    except Exception as exc:
        print(f"   child steps: library internals not found ({type(exc).__name__}: {exc})")
        return
    print(
        "   a child call instead of a root: open_child (span id, node, append) "
        f"{open_ns:,.0f} ns; close_child {close_ns:,.0f} ns"
    )
    print()


def gc_section() -> None:
    """The cyclic GC's share: blocks of 1,000 awaited calls with pauses (as bench_profiler.py),
    with the GC as is, after ``gc.freeze()``, and disabled; plus the GC-tracked objects one call
    leaves alive until the consumer takes its record."""

    @profile
    async def aleaf() -> None:
        return None

    async def plain() -> None:
        return None

    async def blocks(fn: Callable[[], Any]) -> float:
        per_call: list[float] = []
        for _ in range(100):
            t0 = time.perf_counter_ns()
            for _ in range(1000):
                await fn()
            per_call.append((time.perf_counter_ns() - t0) / 1000)
            await asyncio.sleep(0.005)
        return statistics.median(per_call)

    async def main() -> list[tuple[str, float]]:
        tel = pa.init(
            service_name="bench", handlers=[null_handler()], install_signal_handlers=False
        )
        for _ in range(5000):
            await aleaf()
        await tel.flush()
        gc.collect()
        gc.disable()
        before = gc.get_count()[0]
        for _ in range(1000):
            await aleaf()
        alive = (gc.get_count()[0] - before) / 1000
        gc.enable()
        await tel.flush()
        out = [("GC-tracked objects alive per call until the consumer runs", alive)]
        gc.collect()
        out.append(("overhead, GC as is", await blocks(aleaf) - await blocks(plain)))
        gc.freeze()
        out.append(("overhead after gc.freeze()", await blocks(aleaf) - await blocks(plain)))
        gc.unfreeze()
        gc.disable()
        out.append(("overhead with the GC disabled", await blocks(aleaf) - await blocks(plain)))
        gc.enable()
        out.append(
            ("overhead, GC as is again (drift check)", await blocks(aleaf) - await blocks(plain))
        )
        out.append(("GC-tracked objects in the process", float(len(gc.get_objects()))))
        await tel.shutdown(timeout=60)
        return out

    print("4. the cyclic GC's share (flat async def, blocks of 1,000 + 5 ms pauses)")
    for label, value in asyncio.run(main()):
        print(f"   {label:<62} {value:8,.1f}" if value < 100 else f"   {label:<62} {value:8,.0f}")
    print()


def cprofile_section(n: int) -> None:
    tel = pa.init(
        service_name="bench",
        handlers=[null_handler()],
        install_signal_handlers=False,
        queue_size=4 * n + 10,
    )
    profiled = profile(leaf)
    for _ in range(1000):
        profiled()
    tel.flush_sync()
    loop = tel._pipeline.loop
    assert loop is not None
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        profiled()
    prof.disable()
    release.set()
    stats = pstats.Stats(prof)
    calls = stats.total_calls  # type: ignore[attr-defined]
    print(f"5. cProfile of {n:,} flat calls, consumer stalled: {calls / n:.1f} profiled-for")
    print("   Python-level calls per profiled call (cProfile counts C functions too)")
    stats.sort_stats("tottime").print_stats(15)
    tel.shutdown_sync(timeout=60)


SECTIONS: dict[str, Callable[[int], None]] = {
    "sync": sync_section,
    "drain": async_section,
    "gc": lambda n: gc_section(),
    "cprofile": cprofile_section,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="calls in the sustained runs")
    parser.add_argument("--cprofile", action="store_true", help="also cProfile the caller")
    parser.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.section is not None:
        SECTIONS[args.section](args.n)
        return 0
    # Each section in a fresh process: the backlogs one builds must not slow the next.
    sections = ["sync", "drain", "gc"] + (["cprofile"] if args.cprofile else [])
    for section in sections:
        cmd = [sys.executable, __file__, "--section", section, "--n", str(args.n)]
        done = subprocess.run(cmd, check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
