"""One measurement of one library, in this fresh process; ``bench_profiler.py`` spawns it.

    python bench/_measure_profiler.py profile PEER SCENARIO WORKDIR RESULT_JSON PARAMS_JSON
    python bench/_measure_profiler.py metric  PEER OP       WORKDIR RESULT_JSON PARAMS_JSON

``profile``: the scenario's functions are built twice from the same source, once plain and
once through the library's decorator, and both are timed in this process. Each of ``blocks``
rounds times one block of ``calls`` plain calls, then one block of ``calls`` profiled calls,
then pauses ``pause`` seconds (``time.sleep`` in a synchronous program, ``await
asyncio.sleep`` on the loop) so a library's background work (a pipeline's consumer, a span
processor's worker) catches up between bursts, as between requests of a real service; the
plain block always follows a pause, so it never pays for that work. Reported: the median
profiled block minus the median plain block, per call (per root call in the tree scenarios).

Scenarios (``SCENARIOS``): ``flat-async`` (``await leaf()`` in a loop inside one running event
loop), ``flat-sync`` (``leaf()`` in a synchronous program, no event loop), ``tree-async``
(``await root()`` where ``root`` awaits three profiled children in sequence) and
``tree-sync`` (the same with plain functions). Every function body is empty (``return None``).

``metric``: the library's loop for the operation (see ``peers/_prof_base.py``) and an empty
``for`` loop over the same values are timed alternately, ``blocks`` times, with a ``pause``
after each pair; reported: median operation block minus median empty block, per operation.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from peers import METRIC_PEERS, PROFILER_PEERS, MetricPeer, ProfilerPeer, adapter_class

Decorate = Callable[[Callable[..., Any]], Callable[..., Any]]

SCENARIOS: dict[str, tuple[bool, int]] = {
    "flat-async": (True, 1),
    "flat-sync": (False, 1),
    "tree-async": (True, 4),
    "tree-sync": (False, 4),
}
"""Scenario -> (async?, profiled calls per timed call)."""


def _identity(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


# ---------------------------------------------------------------------------- the functions


def build_flat_async(decorate: Decorate) -> Callable[[], Awaitable[None]]:
    @decorate
    async def leaf() -> None:
        return None

    return leaf


def build_flat_sync(decorate: Decorate) -> Callable[[], None]:
    @decorate
    def leaf() -> None:
        return None

    return leaf


def build_tree_async(decorate: Decorate) -> Callable[[], Awaitable[None]]:
    @decorate
    async def load_user() -> None:
        return None

    @decorate
    async def score() -> None:
        return None

    @decorate
    async def render() -> None:
        return None

    @decorate
    async def handle() -> None:
        await load_user()
        await score()
        await render()

    return handle


def build_tree_sync(decorate: Decorate) -> Callable[[], None]:
    @decorate
    def load_user() -> None:
        return None

    @decorate
    def score() -> None:
        return None

    @decorate
    def render() -> None:
        return None

    @decorate
    def handle() -> None:
        load_user()
        score()
        render()

    return handle


BUILDERS: dict[str, Callable[[Decorate], Callable[[], Any]]] = {
    "flat-async": build_flat_async,
    "flat-sync": build_flat_sync,
    "tree-async": build_tree_async,
    "tree-sync": build_tree_sync,
}


# ---------------------------------------------------------------------------- profile


def _summary(plain: list[float], profiled: list[float], per_timed_call: int) -> dict[str, Any]:
    plain_median = statistics.median(plain)
    profiled_median = statistics.median(profiled)
    p_deciles = statistics.quantiles(profiled, n=10)
    overhead = profiled_median - plain_median
    paired = statistics.median(p - q for p, q in zip(profiled, plain, strict=True))
    return {
        "overhead_ns": overhead,
        "overhead_per_profiled_call_ns": overhead / per_timed_call,
        "paired_overhead_ns": paired,
        "plain_ns": plain_median,
        "profiled_ns": profiled_median,
        "profiled_p10": p_deciles[0] - plain_median,
        "profiled_p90": p_deciles[-1] - plain_median,
        "blocks": len(profiled),
    }


def measure_profile_sync(peer: ProfilerPeer, scenario: str, p: dict[str, Any]) -> dict[str, Any]:
    calls, blocks, pause = p["calls"], p["blocks"], p["pause"]
    peer.setup()
    plain_fn = BUILDERS[scenario](_identity)
    profiled_fn = BUILDERS[scenario](peer.decorate)
    clock, timed = time.perf_counter_ns, range(calls)
    for _ in range(p["warmup_blocks"]):
        for fn in (plain_fn, profiled_fn):
            for _ in timed:
                fn()
        time.sleep(pause)
    time.sleep(pause * 10)
    gc.collect()
    plain: list[float] = []
    profiled: list[float] = []
    for _ in range(blocks):
        fn = plain_fn
        t0 = clock()
        for _ in timed:
            fn()
        plain.append((clock() - t0) / calls)
        fn = profiled_fn
        t0 = clock()
        for _ in timed:
            fn()
        profiled.append((clock() - t0) / calls)
        time.sleep(pause)
    peer.finish()
    return {**_summary(plain, profiled, SCENARIOS[scenario][1]), "details": peer.details()}


async def measure_profile_async(
    peer: ProfilerPeer, scenario: str, p: dict[str, Any]
) -> dict[str, Any]:
    calls, blocks, pause = p["calls"], p["blocks"], p["pause"]
    peer.setup()
    plain_fn = BUILDERS[scenario](_identity)
    profiled_fn = BUILDERS[scenario](peer.decorate)
    clock, timed = time.perf_counter_ns, range(calls)
    for _ in range(p["warmup_blocks"]):
        for fn in (plain_fn, profiled_fn):
            for _ in timed:
                await fn()
        await asyncio.sleep(pause)
    await asyncio.sleep(pause * 10)
    gc.collect()
    plain: list[float] = []
    profiled: list[float] = []
    for _ in range(blocks):
        fn = plain_fn
        t0 = clock()
        for _ in timed:
            await fn()
        plain.append((clock() - t0) / calls)
        fn = profiled_fn
        t0 = clock()
        for _ in timed:
            await fn()
        profiled.append((clock() - t0) / calls)
        await asyncio.sleep(pause)
    await peer.afinish()
    return {**_summary(plain, profiled, SCENARIOS[scenario][1]), "details": peer.details()}


# ---------------------------------------------------------------------------- metric


def _empty_loop(values: Sequence[float]) -> None:
    for _ in values:
        pass


def measure_metric(peer: MetricPeer, op: str, workdir: str, p: dict[str, Any]) -> dict[str, Any]:
    calls, blocks, pause = p["calls"], p["blocks"], p["pause"]
    peer.setup(workdir)
    run = peer.loop(op)
    values = [(i % 97) * 0.1 for i in range(calls)]
    clock = time.perf_counter_ns
    for _ in range(p["warmup_blocks"]):
        _empty_loop(values)
        run(values)
    gc.collect()
    empty: list[float] = []
    timed: list[float] = []
    for _ in range(blocks):
        t0 = clock()
        _empty_loop(values)
        t1 = clock()
        run(values)
        t2 = clock()
        empty.append((t1 - t0) / calls)
        timed.append((t2 - t1) / calls)
        time.sleep(pause)
    peer.finish()
    empty_median = statistics.median(empty)
    deciles = statistics.quantiles(timed, n=10)
    return {
        "ns_per_op": statistics.median(timed) - empty_median,
        "p10": deciles[0] - empty_median,
        "p90": deciles[-1] - empty_median,
        "loop_ns": empty_median,
        "blocks": blocks,
        "details": peer.details(),
    }


# ---------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    kind, key, what, workdir, result_path, params_json = argv
    params: dict[str, Any] = json.loads(params_json)
    result: dict[str, Any]
    if kind == "profile":
        peer: ProfilerPeer = adapter_class(PROFILER_PEERS[key], ProfilerPeer)()
        if SCENARIOS[what][0]:
            result = asyncio.run(measure_profile_async(peer, what, params))
        else:
            result = measure_profile_sync(peer, what, params)
    elif kind == "metric":
        mpeer: MetricPeer = adapter_class(METRIC_PEERS[key], MetricPeer)()
        result = measure_metric(mpeer, what, workdir, params)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
