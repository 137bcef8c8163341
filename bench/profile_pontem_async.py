"""Where pontem-async's time goes, per log call and per delivered record; run by hand.

    bench/.venv/bin/python bench/profile_pontem_async.py [--n 200000] [--cprofile]

1. Caller side, isolated: the pipeline's loop thread is stalled (a callback waits on an
   event), so ``log.info`` only builds and enqueues, with no GIL contention. The work of one
   call is then timed step by step (``timeit``) to attribute it.
2. Consumer side, isolated: the stalled loop is released and the drain of the backlog is
   timed; ``encode_line`` and the handler's write are timed on their own.
3. ``--cprofile``: cProfile of the caller thread and of the pipeline's loop thread during an
   ordinary run (profiling inflates per-call cost; read the proportions, not the totals).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
import timeit
from typing import Any

import pontem_async as pa
from pontem_async.context import _context
from pontem_async.encoding.jsonl import encode_batch, encode_line
from pontem_async.handlers import RotatingFileHandler
from pontem_async.records import LogRecord

MESSAGE = "bench message"


def _ns(stmt: str, env: dict[str, Any], number: int = 200_000) -> float:
    best = min(timeit.repeat(stmt, globals=env, number=number, repeat=5))
    return best / number * 1e9


def caller_side(workdir: str, n: int) -> None:
    path = os.path.join(workdir, "caller.jsonl")
    tel = pa.Telemetry(
        service_name="bench",
        handlers=[RotatingFileHandler(path, max_bytes=1 << 40, compress=False)],
        queue_size=n + 1,
        overflow="block",
        install_signal_handlers=False,
    ).start()
    info = tel.logger.info
    info(MESSAGE, k="v", i=-1)
    tel.flush_sync()  # the file is open, the consumer is idle
    loop = tel._pipeline.loop
    assert loop is not None
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait)  # stall the pipeline's loop thread
    chunk = 10_000
    per_chunk: list[float] = []
    for first in range(0, n - n % chunk, chunk):
        t0 = time.perf_counter_ns()
        for i in range(first, first + chunk):
            info(MESSAGE, k="v", i=i)
        per_chunk.append((time.perf_counter_ns() - t0) / chunk)
    print(
        "log.info with the consumer stalled (pure caller cost, no GIL contention):\n"
        f"  first {chunk:,} calls {per_chunk[0]:,.0f} ns/call; with a backlog of "
        f"{len(per_chunk) * chunk:,} records {per_chunk[-1]:,.0f} ns/call; "
        f"median chunk {sorted(per_chunk)[len(per_chunk) // 2]:,.0f} ns/call"
    )
    t0 = time.perf_counter()
    release.set()
    tel.flush_sync()
    drained = time.perf_counter() - t0
    backlog = len(per_chunk) * chunk
    print(
        f"consumer drain of that backlog (batches of 512, to the file): {drained:.2f} s = "
        f"{drained / backlog * 1e9:,.0f} ns/record ({backlog / drained:,.0f} records/s)"
    )
    tel.shutdown_sync(timeout=300)

    lane = tel._pipeline.lanes[0]
    rec = LogRecord(time.time_ns(), 9, MESSAGE, {"k": "v", "i": 1}, "", tel.resource)
    env: dict[str, Any] = {
        "noop": lambda msg, /, **kw: None,
        "ctx": _context,
        "time_ns": time.time_ns,
        "new": tuple.__new__,
        "LogRecord": LogRecord,
        "res": tel.resource,
        "rec": rec,
        "targets": tel._pipeline._log_targets[9],
        "buf": lane.buf,
    }
    steps = [
        ("call + kwargs dict (no-op function)", "noop('bench message', k='v', i=1)"),
        ("_context.get()", "ctx.get()"),
        ("time.time_ns()", "time_ns()"),
        (
            "build the record (8-tuple + tuple.__new__)",
            "new(LogRecord, (1, 9, 'm', None, '', res, None, None))",
        ),
        ("routing: record.kind + targets lookup", "rec.kind == 'log'; targets"),
        ("deque.append + popleft (the queue op)", "buf.append(rec); buf.pop()"),
    ]
    print("  the work of one call, each step timed alone (timeit, best of 5):")
    total = 0.0
    for label, stmt in steps:
        cost = _ns(stmt, env)
        total += cost
        print(f"    {label:<44} {cost:6.0f} ns")
    print(f"    {'sum of the steps':<44} {total:6.0f} ns (rest: frames, attribute loads, checks)")


def consumer_side(workdir: str, n: int) -> None:
    records = [
        LogRecord(time.time_ns(), 9, MESSAGE, {"k": "v", "i": i}, "", {"service.name": "bench"})
        for i in range(n)
    ]
    t0 = time.perf_counter()
    data = encode_batch(records)
    enc = (time.perf_counter() - t0) / n * 1e9
    per_line = _ns("encode_line(r)", {"encode_line": encode_line, "r": records[0]}, 100_000)
    print(f"encode_line: {per_line:,.0f} ns/record alone; encode_batch: {enc:,.0f} ns/record")
    print(f"  line size {len(data) / n:.0f} bytes")
    handler = RotatingFileHandler(
        os.path.join(workdir, "consumer.jsonl"), max_bytes=1 << 40, compress=False
    )

    async def emit_all() -> float:
        await handler.open()
        start = time.perf_counter()
        for first in range(0, n, 512):
            await handler.emit(records[first : first + 512])
        took = time.perf_counter() - start
        await handler.close()
        return took

    took = asyncio.run(emit_all())
    print(
        f"RotatingFileHandler.emit, batches of 512 (encode + one write each): "
        f"{took / n * 1e9:,.0f} ns/record ({n / took:,.0f} records/s)"
    )


def with_cprofile(workdir: str, n: int) -> None:
    path = os.path.join(workdir, "cprofile.jsonl")
    tel = pa.Telemetry(
        service_name="bench",
        handlers=[RotatingFileHandler(path, max_bytes=1 << 40, compress=False)],
        queue_size=10_000,
        overflow="block",
        install_signal_handlers=False,
    ).start()
    loop_prof, caller_prof = cProfile.Profile(), cProfile.Profile()
    loop = tel._pipeline.loop
    assert loop is not None
    enabled = threading.Event()

    def enable() -> None:
        loop_prof.enable()
        enabled.set()

    loop.call_soon_threadsafe(enable)
    enabled.wait()
    info = tel.logger.info
    caller_prof.enable()
    for i in range(n):
        info(MESSAGE, k="v", i=i)
    caller_prof.disable()
    tel.flush_sync()
    done = threading.Event()

    def disable() -> None:
        loop_prof.disable()
        done.set()

    loop.call_soon_threadsafe(disable)
    done.wait()
    tel.shutdown_sync()
    for title, prof in (("caller thread", caller_prof), ("pipeline loop thread", loop_prof)):
        print(f"\n--- cProfile: {title} (top 15 by own time) ---")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pontem-profile-") as workdir:
        caller_side(workdir, args.n)
        print()
        consumer_side(workdir, args.n)
        if args.cprofile:
            with_cprofile(workdir, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
