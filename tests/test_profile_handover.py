"""A root that returns is handed to the handlers' queues live, and the consumer that takes it
makes its record (``_calltree.root_record``). What users must not notice: the tree is the one
of the root's end however late it is frozen, every handler gets the same tree, and records keep
their order, their overflow policy and their flush guarantees."""

from __future__ import annotations

import asyncio
import gc

import pytest
from calltree_helpers import live_nodes

from pontem_async import Telemetry
from pontem_async.profiler import Profiler
from pontem_async.records import ProfileRecord, Record
from pontem_async.testing import MemoryHandler


def profiles(records: list[Record]) -> list[ProfileRecord]:
    return [r for r in records if isinstance(r, ProfileRecord)]


def started(*handlers: MemoryHandler, **options: object) -> tuple[Telemetry, Profiler]:
    tel = Telemetry("svc", handlers=list(handlers), install_signal_handlers=False, **options)
    tel.start()
    return tel, Profiler(tel)


@pytest.mark.asyncio
async def test_a_child_that_ends_after_its_root_is_unfinished_though_frozen_later() -> None:
    """The consumer freezes the tree after the child has ended: the record must still show
    the tree as it was at the root's end (the child running, cut at the root's end)."""
    memory = MemoryHandler(name="mem")
    tel, prof = started(memory, flush_interval=60.0)  # the consumer waits for a full batch
    release = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    @prof.profile
    async def late() -> None:
        await release.wait()

    @prof.profile
    async def root() -> None:
        tasks.append(asyncio.create_task(late()))
        await asyncio.sleep(0)  # late() starts, then waits

    await root()
    release.set()
    await tasks[0]  # the child has ended; its root is still queued, not frozen
    assert memory.records == []
    assert await tel.flush()
    (record,) = profiles(memory.records)
    (child,) = record.root.children
    assert child.attributes == {"unfinished": True}
    assert record.unfinished == 1
    root_end = record.root.start_unix_nano + record.root.duration_ns
    assert child.start_unix_nano + child.duration_ns == root_end
    await tel.shutdown()


@pytest.mark.asyncio
async def test_every_handler_gets_the_same_tree_in_order_with_the_logs() -> None:
    first, second = MemoryHandler(name="first"), MemoryHandler(name="second")
    tel, prof = started(first, second)

    @prof.profile
    async def load() -> None:
        pass

    @prof.profile
    async def handle() -> None:
        await load()

    tel.logger.info("before")
    await handle()
    tel.logger.info("after")
    assert await tel.flush()
    for handler in (first, second):
        assert [r.kind for r in handler.records] == ["log", "profile", "log"]
        assert [getattr(r, "body", None) for r in handler.logs] == ["before", "after"]
    tree = first.records[1]
    assert isinstance(tree, ProfileRecord)
    assert tree == second.records[1]
    assert tree.resource == tel.resource
    (child,) = tree.root.children
    assert (child.name, child.parent_span_id) == (
        "test_profile_handover:handle.load",
        tree.root.span_id,
    )
    await tel.shutdown()


@pytest.mark.asyncio
async def test_queued_roots_follow_the_overflow_policy() -> None:
    """Roots made faster than the consumer runs (this task never yields) fill the queue:
    ``drop_oldest`` drops the oldest trees, counted, and delivers the newest."""
    memory = MemoryHandler(name="mem")
    tel, prof = started(memory, queue_size=3, overflow="drop_oldest")

    @prof.profile
    async def job(n: int) -> int:
        return n

    for n in range(8):
        await job(n)
    assert tel.stats()["mem"]["queued"] == 3
    assert tel.stats()["mem"]["dropped"] == {"overflow": 5}
    assert await tel.flush()
    assert len(profiles(memory.records)) == 3
    await tel.shutdown()


def test_roots_of_a_synchronous_program_are_delivered_at_shutdown() -> None:
    """No loop in the caller's thread: the pipeline's own thread freezes the trees."""
    memory = MemoryHandler(name="mem")
    tel, prof = started(memory)

    @prof.profile
    def step() -> None:
        pass

    @prof.profile
    def run() -> None:
        step()
        step()

    for _ in range(50):
        run()
    report = tel.shutdown_sync(timeout=10)
    assert report.complete
    records = profiles(memory.records)
    assert len(records) == 50
    assert all(len(r.root.children) == 2 and r.unfinished == 0 for r in records)
    assert len({r.trace_id for r in records}) == 50


@pytest.mark.asyncio
async def test_a_long_burst_queues_no_more_than_a_batch_of_live_trees() -> None:
    """Live trees are objects the cyclic GC keeps visiting: a burst that never lets the
    consumer run must not queue more than a batch of them; the rest wait frozen."""
    memory = MemoryHandler(name="mem")
    live_trees = 100
    tel, prof = started(memory, queue_size=10 * live_trees, batch_size=live_trees)

    @prof.profile
    async def leaf() -> None:
        pass

    @prof.profile
    async def root() -> None:
        await leaf()
        await leaf()

    gc.collect()
    live_before = live_nodes()
    for _ in range(3 * live_trees):
        await root()
    live = live_nodes() - live_before
    assert live_trees * 3 <= live <= (live_trees + 1) * 3  # each live tree: a root, 2 leaves
    assert tel.stats()["mem"]["queued"] == 3 * live_trees
    assert await tel.flush()
    records = profiles(memory.records)
    assert len(records) == 3 * live_trees
    assert all(len(r.root.children) == 2 and r.unfinished == 0 for r in records)
    await tel.shutdown()
