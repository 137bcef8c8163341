"""One measurement of one peer, in this fresh process; ``bench_logging.py`` spawns it.

    python bench/_measure.py PEER MEASUREMENT WORKDIR RESULT_JSON PARAMS_JSON

Measurements (see README.md for the why):

- ``latency``: caller-side cost. Warm up, then time ``blocks`` blocks of ``block`` calls with
  ``perf_counter_ns``; a pause of ``pause`` seconds after each block lets background writers
  catch up, as between bursts of a real service. Reports the median block / ``block``. The
  peer is then finished (untimed), unless it opts out (``finish_after_latency``).
- ``throughput``: ``n`` records emitted as fast as possible, then ``finish()`` and an
  ``os.fsync`` of every file written; records/s = n / (first emit -> durable). Then every line
  on disk is parsed and the unique ``i`` values are counted.
- ``rss``: peak RSS (``ru_maxrss``) above the process's own high-water mark after ``setup``,
  for a burst of ``n`` records up to the end of ``finish()``.

Async peers run inside ``asyncio.run``; the harness yields to their loop with
``await asyncio.sleep(0)`` after every ``chunk`` records while emitting (a service on an event
loop awaits something regularly), and with ``await asyncio.sleep(pause)`` between latency
blocks. Sync peers run with no event loop at all: the measurement coroutines below never
suspend for them, and are driven by ``_run_without_loop``.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Coroutine
from typing import IO, Any, TypeVar, cast

import orjson
from peers import AsyncPeer, Peer, load

_T = TypeVar("_T")


class Driver:
    """Runs a peer's lifecycle the same way whether it is sync or async."""

    def __init__(self, peer: Peer, chunk: int) -> None:
        self.peer = peer
        self.is_async = isinstance(peer, AsyncPeer)
        self.chunk = chunk

    async def setup(self, workdir: str) -> None:
        if isinstance(self.peer, AsyncPeer):
            await self.peer.setup(workdir)
        else:
            self.peer.setup(workdir)  # type: ignore[attr-defined]

    async def finish(self) -> None:
        if isinstance(self.peer, AsyncPeer):
            await self.peer.finish()
        else:
            self.peer.finish()  # type: ignore[attr-defined]

    async def pause(self, seconds: float) -> None:
        if self.is_async:
            await asyncio.sleep(seconds)
        elif seconds > 0:
            time.sleep(seconds)  # noqa: ASYNC251 - sync peers run with no event loop

    async def emit(self, start: int, stop: int) -> None:
        """Log ``start .. stop-1`` as fast as possible (yielding to an async peer's loop)."""
        log_range, chunk = self.peer.log_range, self.chunk
        for first in range(start, stop, chunk):
            log_range(first, min(first + chunk, stop))
            if self.is_async:
                await asyncio.sleep(0)


async def measure_latency(drv: Driver, workdir: str, p: dict[str, Any]) -> dict[str, Any]:
    block, blocks, warmup, pause = p["block"], p["blocks"], p["warmup"], p["pause"]
    await drv.setup(workdir)
    await drv.emit(0, warmup)
    await drv.pause(pause * 10)
    log_range, clock = drv.peer.log_range, time.perf_counter_ns
    per_call: list[float] = []
    i = warmup
    for _ in range(blocks):
        t0 = clock()
        log_range(i, i + block)
        per_call.append((clock() - t0) / block)
        i += block
        await drv.pause(pause)
    if drv.peer.finish_after_latency:
        await drv.finish()
    per_call.sort()
    deciles = statistics.quantiles(per_call, n=10)
    result = {
        "ns_per_call": statistics.median(per_call),
        "p10": deciles[0],
        "p90": deciles[-1],
        "min": per_call[0],
        "max": per_call[-1],
        "calls": blocks * block,
        "details": drv.peer.details(),
    }
    if not drv.peer.finish_after_latency:
        # Leave now: asyncio.run would otherwise cancel the backlog and then wait for the
        # thread-pool work it already queued, which is the slow part being skipped.
        write_result(p["result_path"], result)
        os._exit(0)
    return result


async def measure_throughput(drv: Driver, workdir: str, p: dict[str, Any]) -> dict[str, Any]:
    n = p["n"]
    await drv.setup(workdir)
    rss0 = _maxrss_kib()
    gc.collect()
    t0 = time.perf_counter()
    await drv.emit(0, n)
    t_emitted = time.perf_counter()
    await drv.finish()
    t_finished = time.perf_counter()
    fsync_tree(workdir)
    t_durable = time.perf_counter()
    on_disk = count_records(workdir, n)
    return {
        "n": n,
        "records_per_s": n / (t_durable - t0),
        "seconds": t_durable - t0,
        "emit_seconds": t_emitted - t0,
        "finish_seconds": t_finished - t_emitted,
        "fsync_seconds": t_durable - t_finished,
        "rss_mib": (_maxrss_kib() - rss0) / 1024,
        **on_disk,
        "on_disk_pct": 100.0 * on_disk["unique"] / n,
        "details": drv.peer.details(),
    }


async def measure_rss(drv: Driver, workdir: str, p: dict[str, Any]) -> dict[str, Any]:
    n = p["n"]
    await drv.setup(workdir)
    gc.collect()
    baseline = _maxrss_kib()
    t0 = time.perf_counter()
    await drv.emit(0, n)
    await drv.finish()
    seconds = time.perf_counter() - t0
    peak = _maxrss_kib()
    return {
        "n": n,
        "peak_rss_mib": (peak - baseline) / 1024,
        "baseline_mib": baseline / 1024,
        "seconds": seconds,
        "details": drv.peer.details(),
    }


MEASUREMENTS = {
    "latency": measure_latency,
    "throughput": measure_throughput,
    "rss": measure_rss,
}


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def fsync_tree(root: str) -> None:
    """``fsync`` every file under ``root``, then the directories holding them."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _record_id(obj: Any) -> int | None:
    if not isinstance(obj, dict):
        return None
    value = obj.get("i")
    if value is None:
        attributes = obj.get("attributes")
        if isinstance(attributes, dict):
            value = attributes.get("i")
    return value if type(value) is int else None


def count_records(root: str, n: int) -> dict[str, int]:
    """Parse every line of every file under ``root`` (``.gz`` included); count unique ids."""
    seen = bytearray(n)
    lines = unique = duplicates = unparsable = other = 0
    for dirpath, _, filenames in os.walk(root):
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            opener = gzip.open if name.endswith(".gz") else open
            with cast("IO[bytes]", opener(path, "rb")) as f:
                for line in f:
                    lines += 1
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        unparsable += 1
                        continue
                    i = _record_id(obj)
                    if i is None or not 0 <= i < n:
                        other += 1
                    elif seen[i]:
                        duplicates += 1
                    else:
                        seen[i] = 1
                        unique += 1
    return {
        "lines": lines,
        "unique": unique,
        "duplicates": duplicates,
        "unparsable": unparsable,
        "other_lines": other,
    }


def _run_without_loop(coro: Coroutine[Any, Any, _T]) -> _T:
    """Drive a coroutine that never suspends (sync peers) without creating an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(_T, done.value)
    coro.close()
    raise RuntimeError("a synchronous peer's measurement tried to suspend")


def main(argv: list[str]) -> int:
    key, measurement, workdir, result_path, params_json = argv
    params: dict[str, Any] = json.loads(params_json)
    params["result_path"] = result_path
    peer = load(key)
    drv = Driver(peer, params["chunk"])
    coro = MEASUREMENTS[measurement](drv, workdir, params)
    result = asyncio.run(coro) if drv.is_async else _run_without_loop(coro)
    write_result(result_path, result)
    return 0


def write_result(path: str, result: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
