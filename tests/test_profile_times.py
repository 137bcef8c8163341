"""The ``time_profiler`` histogram is fed in batches (``pontem_async._profile_times``): every read
sees every call that returned before it, children count while their root still runs, the loop
catches up without a read, and the waiting durations stay bounded when nothing drains them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pontem_async import Telemetry, _profile_times
from pontem_async._profile_state import TIME_BUCKETS_MS
from pontem_async._registry import MetricsRegistry
from pontem_async.profiler import TIME_PROFILER, Profiler
from pontem_async.records import HistogramValue
from pontem_async.testing import MemoryHandler, capture

MODULE = "test_profile_times"


def counts(tel: Telemetry) -> dict[str, int]:
    """``time_profiler`` count per method path, read through a snapshot (as exporters do)."""
    out: dict[str, int] = {}
    for record in tel.metrics.snapshot():
        if record.name == TIME_PROFILER:
            for point in record.points:
                assert isinstance(point.value, HistogramValue)
                out[point.labels["method"]] = out.get(point.labels["method"], 0) + point.value.count
    return out


@pytest.mark.asyncio
async def test_children_reach_the_histogram_while_their_root_still_runs() -> None:
    """A long-running root (a worker's main loop): the calls it makes must show in the metrics
    long before it ends, not when its tree is submitted."""
    tel = Telemetry("svc", handlers=[], install_signal_handlers=False)
    prof = Profiler(tel)
    stop = asyncio.Event()
    done = asyncio.Event()

    @prof.profile
    async def job() -> None:
        pass

    @prof.profile
    async def main() -> None:
        for _ in range(5):
            await job()
        done.set()
        await stop.wait()

    with capture(tel) as cap:
        task = asyncio.create_task(main())
        await done.wait()
        assert counts(tel) == {f"{MODULE}:main.job": 5}
        assert cap.records == []  # the root has not ended: no tree yet
        stop.set()
        await task
    assert counts(tel) == {f"{MODULE}:main.job": 5, f"{MODULE}:main": 1}


def started(memory: MemoryHandler) -> tuple[Telemetry, Profiler]:
    """A telemetry whose pipeline runs (on the running loop, or its own loop thread), and a
    profiler on it."""
    tel = Telemetry("svc", handlers=[memory], install_signal_handlers=False)
    tel.start()
    return tel, Profiler(tel)


def waiting(prof: Profiler) -> int:
    """Durations waiting to be counted (a path may be listed twice: count it once)."""
    listed = {id(times): times for times in prof._times.waiting}
    return sum(len(times.durations) for times in listed.values())


@pytest.mark.asyncio
async def test_the_pipeline_loop_counts_waiting_durations_between_tasks(
    memory: MemoryHandler,
) -> None:
    tel, prof = started(memory)

    @prof.profile
    async def leaf() -> None:
        pass

    for _ in range(_profile_times.DRAIN_AT + 10):
        await leaf()
    backlog = waiting(prof)
    assert backlog == _profile_times.DRAIN_AT + 10  # the calls themselves left the counting
    await asyncio.sleep(0)  # one loop iteration: the drain scheduled by the calls runs
    await asyncio.sleep(0)
    assert waiting(prof) == 0
    histogram = tel.metrics.get(TIME_PROFILER)
    assert histogram is not None
    # read the series without a snapshot (a snapshot would drain): the loop already counted
    (series,) = histogram._series.values()
    assert sum(series._counts) == backlog
    await tel.shutdown(timeout=5)


@pytest.mark.asyncio
async def test_a_task_that_never_yields_counts_its_backlog_itself_past_the_cap(
    monkeypatch: pytest.MonkeyPatch, memory: MemoryHandler
) -> None:
    """On the loop's thread the drain waits for the loop; a task that never lets it run must
    not make the backlog grow without bound."""
    monkeypatch.setattr(_profile_times, "CAP", 1_000)
    tel, prof = started(memory)

    @prof.profile
    async def leaf() -> None:
        pass

    most = 0
    for _ in range(5_000):
        await leaf()  # completes without suspending: the loop never runs meanwhile
        most = max(most, waiting(prof))
    assert 1_000 >= most > _profile_times.DRAIN_AT
    assert counts(tel) == {f"{MODULE}:leaf": 5_000}
    await tel.shutdown(timeout=5)


def test_a_synchronous_caller_hands_its_batches_to_the_loop_thread(
    memory: MemoryHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a synchronous program the pipeline's loop runs in its own thread: a caller's full
    batches are counted there (while the caller waits for anything, not on its time), without a
    read; with that loop stuck, the caller counts the backlog itself once :data:`CAP` wait, so
    what waits stays bounded; and every call is counted once."""
    drained_on: list[int] = []
    drain = _profile_times.PendingTimes.drain

    def recorded(pending: _profile_times.PendingTimes) -> None:
        drained_on.append(threading.get_ident())
        drain(pending)

    monkeypatch.setattr(_profile_times.PendingTimes, "drain", recorded)
    tel, prof = started(memory)

    @prof.profile
    def leaf() -> None:
        pass

    leaf()
    assert tel.flush_sync(timeout=5)
    loop_thread = tel._pipeline._loop_thread
    assert loop_thread not in (None, threading.get_ident())
    drained_on.clear()
    for _ in range(3 * _profile_times.DRAIN_AT):
        leaf()
    for _ in range(500):  # the loop's thread catches up, with no read
        if waiting(prof) < _profile_times.DRAIN_AT:
            break
        time.sleep(0.01)
    assert waiting(prof) < _profile_times.DRAIN_AT
    assert drained_on
    assert set(drained_on) == {loop_thread}  # never on the caller's time

    loop = tel._pipeline.loop
    assert loop is not None
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait, 10)
    time.sleep(0.05)
    most = 0
    try:
        for _ in range(2 * _profile_times.CAP):
            leaf()
            most = max(most, waiting(prof))
    finally:
        release.set()
    assert _profile_times.DRAIN_AT < most <= _profile_times.CAP
    assert threading.get_ident() in drained_on  # the stuck loop: the caller counted
    assert counts(tel) == {
        f"{MODULE}:leaf": 1 + 3 * _profile_times.DRAIN_AT + 2 * _profile_times.CAP
    }
    tel.shutdown_sync(timeout=5)


def test_calls_from_many_threads_are_each_counted_once(
    tel_and_prof: tuple[Telemetry, Profiler],
) -> None:
    tel, prof = tel_and_prof

    @prof.profile
    def leaf() -> None:
        pass

    @prof.profile
    def root() -> None:
        for _ in range(50):
            leaf()

    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        for _ in range(100):
            root()
            if _ % 17 == 0:
                counts(tel)  # reads drain while other threads append

    threads = [threading.Thread(target=run) for _ in range(8)]
    with capture(tel):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert counts(tel) == {f"{MODULE}:root": 800, f"{MODULE}:root.leaf": 40_000}


@pytest.fixture
def tel_and_prof() -> tuple[Telemetry, Profiler]:
    tel = Telemetry("svc", handlers=[], install_signal_handlers=False)
    return tel, Profiler(tel)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.lists(st.booleans(), max_size=4), max_size=12),
    read_at=st.integers(min_value=0, max_value=12),
)
def test_every_read_counts_exactly_the_calls_that_returned_before_it(
    shape: list[list[bool]], read_at: int
) -> None:
    """Roots with children (some failing, counted on the direct path): a read in the middle and
    one at the end each see exactly the calls made so far."""
    tel = Telemetry("svc", handlers=[], install_signal_handlers=False)
    prof = Profiler(tel)

    @prof.profile
    def child(fail: bool) -> None:
        if fail:
            raise ValueError("boom")

    @prof.profile
    def root(fails: list[bool]) -> None:
        for fail in fails:
            with contextlib.suppress(ValueError):
                child(fail)

    expected: dict[str, int] = {}
    with capture(tel):
        for index, fails in enumerate(shape):
            if index == read_at:
                assert counts(tel) == expected
            root(fails)
            expected[f"{MODULE}:root"] = expected.get(f"{MODULE}:root", 0) + 1
            if fails:
                path = f"{MODULE}:root.child"
                expected[path] = expected.get(path, 0) + len(fails)
        assert counts(tel) == expected


@settings(max_examples=200, deadline=None)
@given(
    durations=st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=10**11),
            # the bucket bounds themselves, in ns, and their neighbours
            st.sampled_from(TIME_BUCKETS_MS).flatmap(
                lambda ms: st.integers(int(ms * 1e6) - 2, int(ms * 1e6) + 2)
            ),
        ),
        max_size=300,
    ),
    bounds=st.sampled_from([TIME_BUCKETS_MS, (0.1, 0.3, 0.7), (1e-6, 3.3333333, 123.456)]),
)
def test_a_batch_lands_in_the_buckets_one_observe_each_would_choose(
    durations: list[int], bounds: tuple[float, ...]
) -> None:
    registry = MetricsRegistry()
    one_by_one = registry.histogram("a", buckets=bounds).labels()
    batched = registry.histogram("b", buckets=bounds).labels()
    for duration in durations:
        one_by_one.observe(duration / 1e6)
    batched._observe_scaled(list(durations), 1e6)
    assert batched._counts == one_by_one._counts
    assert batched._sum == pytest.approx(one_by_one._sum, rel=1e-12, abs=1e-9)
