"""Call trees: concurrent roots never mix, children follow tasks and copied contexts, unfinished
children are closed and never mutate a submitted tree, memory does not grow, and the current
node survives failing handlers and hooks."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import re
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from calltree_helpers import live_nodes

from pontem_async import Telemetry, _calltree
from pontem_async._calltree import (
    ANCHOR,
    DURATION,
    ENDED_TREE,
    NAME,
    NODE_FIELDS,
    ROOT,
    ROOT_FIELDS,
    SPAN_ID,
    START,
    START_UNIX_NANO,
    TRACE_ID,
    Node,
    children_of,
    close_child,
    current_node,
    current_span_ids,
    finish_root,
    open_child,
    open_root,
)
from pontem_async.handlers.base import Handler
from pontem_async.profiler import Profiler
from pontem_async.records import CallNode, ProfileRecord, Record
from pontem_async.testing import MemoryHandler, capture

HEX16 = re.compile(r"[0-9a-f]{16}")
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def tel() -> Telemetry:
    return Telemetry("svc", handlers=[], install_signal_handlers=False)


@pytest.fixture
def prof(tel: Telemetry) -> Profiler:
    return Profiler(tel)


def profiles(records: Sequence[Record]) -> list[ProfileRecord]:
    return [r for r in records if isinstance(r, ProfileRecord)]


def shape(node: CallNode) -> tuple[str, list[Any]]:
    return node.name, [shape(child) for child in node.children]


def time_counts(tel: Telemetry) -> dict[str, int]:
    """``time_profiler``'s count per method path."""
    return {
        p.labels["method"]: p.value.count  # type: ignore[union-attr]
        for r in tel.metrics.snapshot()
        if r.name == "time_profiler"
        for p in r.points
    }


def check_links(record: ProfileRecord) -> None:
    """Every node: well-formed ids, its parent's span id, started within its parent."""
    root = record.root
    assert HEX32.fullmatch(record.trace_id)
    assert root.parent_span_id is None
    stack: list[CallNode] = [root]
    while stack:
        node = stack.pop()
        assert HEX16.fullmatch(node.span_id)
        assert node.duration_ns is not None
        assert node.duration_ns >= 0
        for child in node.children:
            assert child.parent_span_id == node.span_id
            assert child.start_unix_nano >= node.start_unix_nano
            stack.append(child)
    ids = [n.span_id for n in root.walk()]
    assert len(set(ids)) == len(ids)


@pytest.mark.asyncio
async def test_a_thousand_concurrent_roots_each_get_exactly_their_own_tree(
    tel: Telemetry, prof: Profiler
) -> None:
    @prof.profile
    async def leaf(n: int) -> tuple[str, str] | None:
        await asyncio.sleep(0)
        return current_span_ids()

    @prof.profile
    async def child(n: int) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        here = current_span_ids()
        await asyncio.sleep(0)
        return here, await leaf(n)

    @prof.profile
    async def root(n: int) -> tuple[tuple[str, str] | None, list[Any]]:
        return current_span_ids(), list(await asyncio.gather(child(n), child(n), child(n)))

    with capture(tel) as cap:
        results = await asyncio.gather(*(root(n) for n in range(1000)))

    records = profiles(cap.records)
    assert len(records) == 1000
    by_trace = {r.trace_id: r for r in records}
    assert len(by_trace) == 1000
    expected = (
        "test_calltree:root",
        [("test_calltree:root.child", [("test_calltree:root.child.leaf", [])])] * 3,
    )
    for root_ids, children in results:
        assert root_ids is not None
        record = by_trace[root_ids[0]]
        assert record.root.span_id == root_ids[1]
        assert shape(record.root) == expected
        check_links(record)
        for (child_ids, leaf_ids), node in zip(children, record.root.children, strict=True):
            assert child_ids == (record.trace_id, node.span_id)
            assert leaf_ids == (record.trace_id, node.children[0].span_id)
        assert record.unfinished == 0


@pytest.mark.asyncio
async def test_children_follow_create_task_and_task_groups(tel: Telemetry, prof: Profiler) -> None:
    @prof.profile
    async def work() -> None:
        await asyncio.sleep(0)

    @prof.profile
    async def root() -> None:
        await asyncio.create_task(work())
        async with asyncio.TaskGroup() as group:
            group.create_task(work())
            group.create_task(work())

    with capture(tel) as cap:
        await root()
    (record,) = profiles(cap.records)
    assert shape(record.root) == ("test_calltree:root", [("test_calltree:root.work", [])] * 3)
    check_links(record)


def test_threads_with_copied_context_attach_and_plain_threads_make_roots(
    tel: Telemetry, prof: Profiler
) -> None:
    errors: list[BaseException] = []

    @prof.profile
    def in_thread(n: int) -> int:
        return n

    def run(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    @prof.profile
    def root() -> None:
        threads = [
            threading.Thread(target=run, args=(contextvars.copy_context().run, in_thread, n))
            for n in range(4)
        ] + [threading.Thread(target=run, args=(in_thread, n)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    with capture(tel) as cap:
        root()
    assert errors == []
    records = profiles(cap.records)
    roots = [r for r in records if r.root.name == "test_calltree:root"]
    assert len(roots) == 1
    assert shape(roots[0].root) == (
        "test_calltree:root",
        [("test_calltree:root.in_thread", [])] * 4,
    )
    check_links(roots[0])
    plain = [r for r in records if r is not roots[0]]
    assert [shape(r.root) for r in plain] == [("test_calltree:in_thread", [])] * 4
    assert len({r.trace_id for r in records}) == 5
    assert current_node() is None


def test_many_threads_appending_to_one_parent_lose_nothing(tel: Telemetry, prof: Profiler) -> None:
    @prof.profile
    def leaf() -> None:
        pass

    @prof.profile
    def root() -> None:
        ctx = contextvars.copy_context()
        barrier = threading.Barrier(8)

        def many() -> None:
            barrier.wait()
            for _ in range(200):
                leaf()

        threads = [threading.Thread(target=ctx.copy().run, args=(many,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    with capture(tel) as cap:
        root()
    (record,) = profiles(cap.records)
    assert len(record.root.children) == 1600
    assert record.unfinished == 0
    check_links(record)


@pytest.mark.asyncio
async def test_unfinished_children_are_closed_at_the_root_and_never_mutated_later(
    tel: Telemetry, prof: Profiler
) -> None:
    release = asyncio.Event()
    late: list[asyncio.Task[None]] = []

    @prof.profile
    async def grandchild() -> None:
        pass

    shared = {"kind": "slow"}

    @prof.profile(attributes=shared)
    async def slow() -> None:
        await release.wait()
        await grandchild()  # the tree was submitted: this must not join it
        raise ValueError("late failure")

    @prof.profile
    async def root() -> None:
        late.append(asyncio.create_task(slow()))
        await asyncio.sleep(0)  # slow() starts and waits

    with capture(tel) as cap:
        await root()
        (record,) = profiles(cap.records)
        (child,) = record.root.children
        frozen = (child.duration_ns, dict(child.attributes), child.error, list(child.children))
        assert record.unfinished == 1
        assert child.attributes == {"kind": "slow", "unfinished": True}
        assert child.duration_ns is not None
        assert child.duration_ns <= record.root.duration_ns  # type: ignore[operator]
        release.set()
        with pytest.raises(ValueError, match="late failure"):
            await late[0]
    assert (child.duration_ns, dict(child.attributes), child.error, list(child.children)) == frozen
    assert profiles(cap.records) == [record]  # the late grandchild made no tree of its own
    assert shared == {"kind": "slow"}  # the decorator's dict, shared by every call
    check_links(record)


@pytest.mark.asyncio
async def test_a_task_that_outlives_its_root_never_grows_the_finished_tree(
    tel: Telemetry, prof: Profiler
) -> None:
    """A root that starts a long-lived worker (a service's start-up, say): the worker's task
    copied the root's context, so its calls run "inside" the root's node; once the root has
    ended they join no tree, and nothing keeps their nodes alive."""
    stop = asyncio.Event()
    roots: list[Node] = []

    @prof.profile
    async def handle() -> None:
        pass

    async def worker() -> int:
        calls = 0
        while not stop.is_set():
            await handle()
            calls += 1
            await asyncio.sleep(0)
        return calls

    @prof.profile
    async def start() -> asyncio.Task[int]:
        node = current_node()
        assert node is not None
        roots.append(node)
        return asyncio.create_task(worker())

    with capture(tel) as cap:
        task = await start()
        for _ in range(20):
            await asyncio.sleep(0)
        nodes_before = live_nodes()
        for _ in range(500):
            await asyncio.sleep(0)
        nodes_during = live_nodes()
        stop.set()
        calls = await task
    (record,) = profiles(cap.records)
    assert record.root.children == []
    assert children_of(roots[0]) == []  # the live root holds nothing either
    assert nodes_during <= nodes_before  # 500 more calls, no more nodes alive
    assert calls > 500
    handled = tel.metrics.get("time_profiler")
    assert handled is not None
    (point,) = [
        p
        for r in tel.metrics.snapshot()
        if r.name == "time_profiler"
        for p in r.points
        if p.labels["method"] == "test_calltree:start.handle"
    ]
    assert point.value.count == calls  # type: ignore[union-attr]


def test_threads_calling_across_the_root_end_leave_a_consistent_tree(
    tel: Telemetry, prof: Profiler
) -> None:
    """The root returns while 8 threads (running in its copied context) go on making calls:
    the tree holds finished and unfinished calls only, each once, and every call is counted."""

    @prof.profile
    def leaf() -> None:
        pass

    started = threading.Barrier(9)
    threads: list[threading.Thread] = []

    def work() -> None:
        started.wait()
        for _ in range(300):
            leaf()

    @prof.profile
    def root() -> None:
        ctx = contextvars.copy_context()
        for _ in range(8):
            threads.append(threading.Thread(target=ctx.copy().run, args=(work,)))
            threads[-1].start()
        started.wait()  # the threads are calling; return at once

    with capture(tel) as cap:
        root()
        for thread in threads:
            thread.join()
    (record,) = profiles(cap.records)
    check_links(record)
    children = record.root.children
    assert len(children) <= 2_400
    unfinished = [c for c in children if c.attributes.get("unfinished")]
    assert len(unfinished) == record.unfinished <= 8  # at most one in flight per thread
    assert all(c.duration_ns is not None for c in children)
    assert time_counts(tel) == {"test_calltree:root": 1, "test_calltree:root.leaf": 2_400}


def test_a_root_that_runs_on_keeps_at_most_max_children_and_counts_the_rest(
    tel: Telemetry, prof: Profiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root that never ends (a worker's loop) must not keep every call it makes: a call keeps
    at most ``MAX_CHILDREN`` calls directly under it (a root 5 fewer: the check counts a child
    node's fields), the others are freed at once, still timed, and counted in the root's
    attributes."""
    monkeypatch.setattr(_calltree, "MAX_CHILDREN", 50)
    kept = 50 - (ROOT_FIELDS - NODE_FIELDS)
    before = live_nodes()
    alive: list[int] = []

    @prof.profile
    def inner() -> None:
        pass

    @prof.profile
    def leaf() -> None:
        inner()

    @prof.profile
    def fan() -> Iterator[int]:  # a generator: the generic path (open_child)
        for i in range(80):
            inner()
            yield i

    @prof.profile
    def worker() -> None:
        sum(fan())  # 50 of its 80 calls kept
        for _ in range(500):
            leaf()
        alive.append(live_nodes() - before)

    with capture(tel) as cap:
        worker()
    (record,) = profiles(cap.records)
    assert alive == [1 + 1 + 50 + 2 * (kept - 1)]  # root, fan and its 50, the leaves kept
    assert len(list(record.root.walk())) == alive[0]
    fan_node, *leaves = record.root.children
    assert len(fan_node.children) == 50
    assert [c.name for c in leaves] == ["test_calltree:worker.leaf"] * (kept - 1)
    assert record.root.attributes == {"pontem.dropped_calls": 30 + 500 - (kept - 1)}
    assert record.unfinished == 0
    assert time_counts(tel) == {
        "test_calltree:worker": 1,
        "test_calltree:worker.fan": 1,
        "test_calltree:worker.fan.inner": 80,
        "test_calltree:worker.leaf": 500,
        "test_calltree:worker.leaf.inner": 500,
    }


@pytest.mark.asyncio
async def test_a_coroutine_root_takes_at_most_max_calls_too(
    tel: Telemetry, prof: Profiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coroutine wrapper's copy of the child opening keeps the same bound, across tasks."""
    monkeypatch.setattr(_calltree, "MAX_CHILDREN", 30)
    kept = 30 - (ROOT_FIELDS - NODE_FIELDS)

    @prof.profile
    async def leaf() -> None:
        await asyncio.sleep(0)

    @prof.profile
    async def worker() -> None:
        for _ in range(10):
            await asyncio.gather(*(leaf() for _ in range(10)))

    with capture(tel) as cap:
        await worker()
    (record,) = profiles(cap.records)
    assert len(record.root.children) == kept
    assert record.root.attributes == {"pontem.dropped_calls": 100 - kept}


def test_a_first_read_of_a_span_id_waits_for_a_freeze_in_progress() -> None:
    """Deterministically, what the threaded test below can only provoke: while a freeze holds
    the tree lock (a consumer holds it for its batch), a log's first read of an id waits, and
    then gets the id the freeze gave the node, not one of its own."""
    root = open_root("m:f", {})
    child = open_child(root, "m:f.g", {})
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(_calltree.span_id_of(child)))
    with _calltree.tree_lock:  # the freeze
        reader.start()
        reader.join(0.2)
        assert reader.is_alive()  # waiting for the lock
        child[SPAN_ID] = "f" * 16  # the id the freeze gives it
    reader.join(5)
    assert got == ["f" * 16]
    assert _calltree.span_id_of(child) == "f" * 16  # set once, never changed


@pytest.mark.parametrize("freezer", ["caller", "consumer"])
def test_span_ids_read_while_the_tree_freezes_are_the_ones_in_the_record(freezer: str) -> None:
    """A span id is made at its first read (a log inside the call, or the freeze): 8 threads
    read their own call's id, for the first time, while their root's tree is being frozen (by
    the caller under ``capture``, by the pipeline's consumer thread otherwise); each keeps
    reading one id, and it is the id the record carries."""
    memory = MemoryHandler()
    tel = Telemetry("svc", handlers=[memory], install_signal_handlers=False)
    prof = Profiler(tel)
    started = threading.Barrier(9)
    stop = threading.Event()
    seen: list[set[str]] = []
    threads: list[threading.Thread] = []

    @prof.profile
    def child() -> None:
        ids: set[str] = set()
        seen.append(ids)
        started.wait()
        while True:  # read at least once, until the root has ended and the test says stop
            ids.add(current_span_ids()[1])  # type: ignore[index]
            if stop.is_set():
                break
            time.sleep(0)

    @prof.profile
    def root() -> None:
        ctx = contextvars.copy_context()
        for _ in range(8):
            threads.append(threading.Thread(target=ctx.copy().run, args=(child,)))
            threads[-1].start()
        started.wait()  # the threads make their first reads as the root ends

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads with the freeze as much as possible
    try:
        if freezer == "caller":
            with capture(tel) as cap:
                root()
                stop.set()
                for thread in threads:
                    thread.join()
            records = cap.records
        else:
            tel.start()  # a synchronous program: the consumer runs in its own thread
            root()
            assert tel.flush_sync(10)  # the threads read on while the consumer freezes
            stop.set()
            for thread in threads:
                thread.join()
            tel.shutdown_sync(10)
            records = memory.records
    finally:
        sys.setswitchinterval(interval)
    (record,) = profiles(records)
    assert record.unfinished == 8
    assert [len(ids) for ids in seen] == [1] * 8
    assert {ids.pop() for ids in seen} == {c.span_id for c in record.root.children}


def test_a_root_starts_on_the_wall_clock_even_after_the_clock_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Roots read the wall clock at most once a millisecond: their start stays within that of
    time.time_ns(), and a stale anchor (the wall clock stepped an hour) is replaced at once."""
    before = time.time_ns()
    node = open_root("m:f", {})
    after = time.time_ns()
    assert before - 1_000_000 <= node[START_UNIX_NANO] <= after + 1_000_000
    stepped = (_calltree._anchor[0] - 3_600 * 10**9, time.perf_counter_ns() - 2_000_000)
    monkeypatch.setattr(_calltree, "_anchor", stepped)
    node = open_root("m:f", {})
    assert abs(node[START_UNIX_NANO] - time.time_ns()) < 1_000_000
    monkeypatch.setattr(_calltree, "ANCHOR_TTL_NS", 60 * 10**9)  # (a slow machine's ms)
    recent = (_calltree._anchor[0] - 3_600 * 10**9, time.perf_counter_ns())
    monkeypatch.setattr(_calltree, "_anchor", recent)  # within its lifetime: kept as is
    node = open_root("m:f", {})
    assert node[ANCHOR] == recent[0]


def test_nodes_hold_every_field_and_the_freeze_derives_the_rest(tel: Telemetry) -> None:
    """The profiler builds nodes as list literals: each must have every field, in its place,
    and the record's derived fields (parent span ids, wall starts) must come out right."""
    node = open_root("m:f", {})
    child = open_child(node, "m:f.g", {})
    grandchild = open_child(child, "m:f.g.h", {"k": 1})
    assert len(node) == ROOT_FIELDS + 1
    assert len(child) == NODE_FIELDS + 1  # its fields, then its child
    assert len(grandchild) == NODE_FIELDS
    assert (child[NAME], grandchild[NAME]) == ("m:f.g", "m:f.g.h")
    assert child[TRACE_ID] == grandchild[TRACE_ID] == node[TRACE_ID]
    assert (node[ROOT], child[ROOT], grandchild[ROOT]) == (None, node, node)
    assert node[START_UNIX_NANO] == node[ANCHOR] + node[START]
    assert node[START] <= child[START] <= grandchild[START]
    assert children_of(node) == [child]
    assert children_of(child) == [grandchild]
    assert children_of(grandchild) == []
    assert node[DURATION] is None
    assert (node[SPAN_ID], child[SPAN_ID], grandchild[SPAN_ID]) == (None, None, None)  # lazy
    assert HEX32.fullmatch(node[TRACE_ID])
    close_child(grandchild, 3, None)
    with capture(tel) as cap:
        end = grandchild[START] + 5  # after the grandchild's end, not the child's
        finish_root(node, end, None, tel)
    (record,) = profiles(cap.records)
    assert (record.trace_id, record.root.span_id, record.root.duration_ns) == (
        node[TRACE_ID],
        node[SPAN_ID],
        end - node[START],
    )
    (g,) = record.root.children
    (h,) = g.children
    ids = {node[SPAN_ID], child[SPAN_ID], grandchild[SPAN_ID]}  # made by the freeze
    assert len(ids) == 3
    assert all(HEX16.fullmatch(i or "") for i in ids)
    assert (g.span_id, g.parent_span_id) == (child[SPAN_ID], node[SPAN_ID])
    assert (h.span_id, h.parent_span_id) == (grandchild[SPAN_ID], child[SPAN_ID])
    assert g.start_unix_nano == node[ANCHOR] + child[START]
    assert h.start_unix_nano == node[ANCHOR] + grandchild[START]
    assert (h.duration_ns, h.attributes) == (3, {"k": 1})
    assert g.attributes == {"unfinished": True}  # never closed
    assert record.unfinished == 1
    assert child[ROOT] is grandchild[ROOT] is ENDED_TREE  # no cycle back to the root
    assert open_child(child, "m:f.g.late", {})[ROOT] is ENDED_TREE
    assert children_of(child) == [grandchild]  # the late call joined nothing


def test_submitted_trees_are_left_alone_by_the_cyclic_gc(prof: Profiler, tel: Telemetry) -> None:
    """A tree waiting in a queue must not make the application's full collections longer: it
    is submitted as plain tuples, which the GC stops tracking at its first pass."""

    @prof.profile
    def child() -> None:
        pass

    @prof.profile
    def root() -> None:
        child()
        child()

    with capture(tel) as cap:
        root()
        root()  # a leaf root too: flat calls take the inlined path
        prof.profile(lambda: None)()
    records = profiles(cap.records)
    for _ in range(3):  # each pass untracks one level: a tuple whose items are all untracked
        gc.collect()
    frozen = [r[2] for r in records]
    assert all(type(f) is tuple and not gc.is_tracked(f) for f in frozen)
    assert all(not gc.is_tracked(c) for f in frozen for c in f[7])
    assert [c.name for c in records[0].root.children] == ["test_calltree:root.child"] * 2


def test_current_span_ids_inside_and_outside_a_profiled_call(prof: Profiler) -> None:
    seen: list[tuple[str, str] | None] = []

    @prof.profile
    def inner() -> None:
        seen.append(current_span_ids())

    @prof.profile
    def outer() -> None:
        seen.append(current_span_ids())
        inner()
        seen.append(current_span_ids())

    with capture(prof.telemetry):
        outer()
    assert current_span_ids() is None
    outer_ids, inner_ids, outer_again = seen
    assert outer_ids == outer_again
    assert outer_ids is not None
    assert inner_ids is not None
    assert outer_ids[0] == inner_ids[0]
    assert outer_ids[1] != inner_ids[1]


@pytest.mark.asyncio
async def test_ten_thousand_roots_leave_no_node_behind(memory: MemoryHandler) -> None:
    tel = Telemetry("svc", handlers=[memory], flush_interval=0.01, install_signal_handlers=False)
    tel.start()
    prof = Profiler(tel)

    @prof.profile
    async def child() -> None:
        await asyncio.sleep(0)

    @prof.profile
    async def root() -> None:
        await asyncio.gather(child(), child())

    async def wave() -> int:
        await asyncio.gather(*(root() for _ in range(10_000)))
        await tel.flush()
        count = len(memory.records)
        memory.records.clear()
        memory.batches.clear()
        return count

    assert await wave() == 10_000  # warm-up: caches, id pools, histogram series
    gc.collect()
    # (nodes other tests left referenced, from a kept traceback's frames say, are not ours)
    nodes_before = live_nodes()
    gc.disable()  # nodes must be freed by reference counting alone: no cycles
    try:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        assert await wave() == 10_000
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert live_nodes() == nodes_before
    finally:
        gc.enable()
    assert after - before < 1_000_000, f"grew by {after - before} bytes over 10k roots"
    await tel.shutdown(timeout=5)


class _Raising(Handler):
    async def emit(self, batch: Sequence[Record]) -> None:
        raise RuntimeError("handler down")


@pytest.mark.asyncio
async def test_a_failing_handler_or_submit_never_corrupts_the_current_context() -> None:
    tel = Telemetry(
        "svc",
        handlers=[_Raising(name="down")],
        queue_size=1,
        overflow="raise",
        flush_interval=0.01,
        install_signal_handlers=False,
    )
    tel.start()
    prof = Profiler(tel)

    @prof.profile
    async def root(n: int) -> int:
        return n

    @prof.profile
    async def outer() -> list[int]:
        before = current_span_ids()
        out = [await root(n) for n in range(5)]
        assert current_span_ids() == before
        return out

    assert [await root(n) for n in range(5)] == list(range(5))  # queue full: QueueFullError
    assert current_node() is None
    assert await outer() == list(range(5))
    assert current_node() is None
    assert tel._internal_errors.get("profile", 0) >= 1  # QueueFullError, swallowed
    await tel.shutdown(timeout=5)


def test_a_raising_hook_never_corrupts_the_context(prof: Profiler) -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError("hook failed")

    prof.before_func = explode
    prof.after_func = explode
    prof.after_root_func = explode

    @prof.profile
    def inner() -> tuple[str, str] | None:
        return current_span_ids()

    @prof.profile
    def outer() -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        mine = current_span_ids()
        inner()
        return mine, current_span_ids()

    with capture(prof.telemetry) as cap:
        mine, after = outer()
    assert mine == after
    assert mine is not None
    assert current_node() is None
    (record,) = profiles(cap.records)
    assert shape(record.root) == ("test_calltree:outer", [("test_calltree:outer.inner", [])])
    assert prof.hook_errors == {"before_func": 2, "after_func": 2, "after_root_func": 1}


@pytest.fixture
def no_leaked_context() -> Iterator[None]:
    yield
    assert current_node() is None


def test_an_exception_inside_leaves_the_context_as_it_was(
    prof: Profiler, no_leaked_context: None
) -> None:
    @prof.profile
    def fails() -> None:
        raise KeyError("k")

    with capture(prof.telemetry), pytest.raises(KeyError):
        fails()


def test_a_failing_metric_update_still_closes_and_submits_the_tree(
    prof: Profiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pontem_async._profile_state import State

    def broken(self: State, path: str, failed: bool) -> Any:
        raise RuntimeError("registry bug")

    monkeypatch.setattr(State, "time_series", broken)

    @prof.profile
    def child() -> int:
        return 1

    @prof.profile
    def root() -> int:
        return child() + child()

    with capture(prof.telemetry) as cap:
        assert root() == 2
    (record,) = profiles(cap.records)
    assert record.unfinished == 0
    assert shape(record.root) == ("test_calltree:root", [("test_calltree:root.child", [])] * 2)
    check_links(record)
    # durations are counted in batches (by the next read at the latest): the failure is
    # reported there, once per batch
    prof.telemetry.metrics.snapshot()
    assert prof.telemetry._internal_errors["profiler"] >= 1
    with capture(prof.telemetry) as cap:
        assert root() == 2  # and profiling goes on
    assert len(profiles(cap.records)) == 1
