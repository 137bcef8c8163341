"""The pipeline: overflow policies, exactly-once delivery under concurrency, failure isolation,
flush and shutdown semantics, in both loop modes."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence

import pytest

from pontem_async import PipelineOptions, QueueFullError, Telemetry
from pontem_async._lane import Lane
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import Handler
from pontem_async.records import Record
from pontem_async.testing import MemoryHandler


class GateHandler(MemoryHandler):
    """Blocks inside ``emit`` until the gate opens (a thread-safe event, any loop)."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.entered = threading.Event()

    async def emit(self, batch: Sequence[Record]) -> None:
        self.entered.set()
        while not self.gate.is_set():  # noqa: ASYNC110 - a threading.Event: any loop opens it
            await asyncio.sleep(0.005)
        await super().emit(batch)


class FailingHandler(Handler):
    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.calls = 0

    async def emit(self, batch: Sequence[Record]) -> None:
        self.calls += 1
        raise RuntimeError("disk on fire")


class HangingHandler(Handler):
    async def emit(self, batch: Sequence[Record]) -> None:
        await asyncio.Event().wait()


async def until_entered(gate: GateHandler) -> None:
    """Wait until the gate handler is inside ``emit`` (a thread-safe flag, polled)."""
    while not gate.entered.is_set():  # noqa: ASYNC110 - threading.Event, set on any loop
        await asyncio.sleep(0.001)


def ids(handler: MemoryHandler) -> list[int]:
    return [r.attributes["i"] for r in handler.logs]


def make(handlers: list[Handler], **options: object) -> Telemetry:
    return Telemetry(
        "test-svc", handlers=handlers, install_signal_handlers=False, **options  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------- overflow policies


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("policy", "survivors"),
    [("drop_newest", list(range(0, 11))), ("drop_oldest", [0, *range(91, 101)])],
)
async def test_drop_policies_keep_their_end_and_count_the_rest(
    policy: str, survivors: list[int]
) -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], queue_size=10, batch_size=1, overflow=policy, flush_interval=0.01)
    tel.start()
    log = tel.logger
    log.info("x", i=0)
    await until_entered(gate)  # record 0 is now inside emit, the queue is empty
    for i in range(1, 101):
        log.info("x", i=i)
    gate.gate.set()
    assert await tel.flush(5)
    assert ids(gate) == survivors
    assert tel.stats()["gate"]["dropped"] == {"overflow": 90}
    await tel.shutdown()


@pytest.mark.asyncio
async def test_raise_policy_raises_queue_full_at_the_call_site() -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], queue_size=5, batch_size=1, overflow="raise", flush_interval=0.01)
    tel.start()
    log = tel.logger
    log.info("x", i=0)
    await until_entered(gate)
    for i in range(1, 6):
        log.info("x", i=i)
    with pytest.raises(QueueFullError, match="'gate' is full"):
        log.info("x", i=6)
    gate.gate.set()
    assert await tel.flush(5)
    assert ids(gate) == list(range(6))
    assert tel.stats()["gate"]["dropped"] == {"queue_full_raised": 1}
    await tel.shutdown()


def test_block_policy_blocks_a_producer_thread_until_there_is_room() -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], queue_size=5, batch_size=2, overflow="block", flush_interval=0.01)
    tel.start()  # no running loop: private loop thread
    produced = threading.Event()

    def produce() -> None:
        for i in range(50):
            tel.logger.info("x", i=i)
        produced.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert gate.entered.wait(5)
    assert not produced.wait(0.2), "the producer must be blocked while the handler is stuck"
    assert tel.stats()["gate"]["queued"] <= 5
    gate.gate.set()
    producer.join(10)
    assert produced.is_set()
    assert tel.flush_sync(5)
    assert ids(gate) == list(range(50))
    assert tel.stats()["gate"]["dropped"] == {}
    tel.shutdown_sync()


@pytest.mark.asyncio
async def test_block_policy_awaits_room_for_async_callers_on_the_loop() -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], queue_size=5, batch_size=2, overflow="block", flush_interval=0.01)
    tel.start()

    async def produce() -> None:
        for i in range(30):
            await tel.logger.ainfo("x", i=i)

    task = asyncio.create_task(produce())
    await asyncio.sleep(0.1)
    assert not task.done()
    assert tel.stats()["gate"]["queued"] <= 5
    gate.gate.set()
    await asyncio.wait_for(task, 5)
    assert await tel.flush(5)
    assert ids(gate) == list(range(30))
    assert tel.stats()["gate"]["dropped"] == {}
    await tel.shutdown()


@pytest.mark.asyncio
async def test_block_policy_never_blocks_the_loop_for_sync_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], queue_size=3, batch_size=1, overflow="block", flush_interval=0.01)
    tel.start()
    tel.logger.info("x", i=0)
    await until_entered(gate)
    for i in range(1, 10):  # returns at once even though the queue is full
        tel.logger.info("x", i=i)
    gate.gate.set()
    assert await tel.flush(5)
    assert ids(gate) == [0, 1, 2, 3]
    assert tel.stats()["gate"]["dropped"] == {"overflow_on_loop": 6}
    assert "await logger.ainfo" in caplog.text
    await tel.shutdown()


def test_invalid_pipeline_options_name_their_key() -> None:
    with pytest.raises(ConfigError, match=r"^pipeline\.queue_size: expected a positive integer"):
        PipelineOptions(queue_size=0)
    with pytest.raises(ConfigError, match=r"^pipeline\.overflow: expected one of block"):
        PipelineOptions(overflow="explode")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^pipeline\.flush_interval"):
        PipelineOptions(flush_interval=-1)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        Telemetry("svc", handlers=[], queue_sise=3)


# ---------------------------------------------------------------------------- concurrency


@pytest.mark.asyncio
async def test_threads_and_tasks_deliver_every_record_exactly_once() -> None:
    memory = MemoryHandler(name="memory")
    tel = make([memory], queue_size=10_000, overflow="block", flush_interval=0.01)
    tel.start()
    log = tel.logger
    per_thread, per_task = 6_250, 1_000

    def thread_worker(t: int) -> None:
        for n in range(per_thread):
            log.info("t", i=t * 1_000_000 + n)

    async def task_worker(k: int) -> None:
        for n in range(per_task):
            await log.ainfo("a", i=100_000_000 + k * 1_000_000 + n)
            if n % 100 == 0:
                await asyncio.sleep(0)

    threads = [threading.Thread(target=thread_worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(task_worker(k) for k in range(50)))
    await asyncio.to_thread(lambda: [thread.join() for thread in threads])
    assert await tel.flush(30)
    counts = Counter(ids(memory))
    expected = {t * 1_000_000 + n for t in range(8) for n in range(per_thread)} | {
        100_000_000 + k * 1_000_000 + n for k in range(50) for n in range(per_task)
    }
    assert len(expected) == 100_000
    assert set(counts) == expected
    assert max(counts.values()) == 1
    assert tel.stats()["memory"]["dropped"] == {}
    await tel.shutdown()


@pytest.mark.asyncio
async def test_batches_respect_batch_size_and_order() -> None:
    memory = MemoryHandler(name="memory")
    tel = make([memory], batch_size=7, flush_interval=0.01)
    tel.start()
    for i in range(100):
        tel.logger.info("x", i=i)
    assert await tel.flush(5)
    assert ids(memory) == list(range(100))
    assert max(len(batch) for batch in memory.batches) <= 7
    await tel.shutdown()


@pytest.mark.asyncio
async def test_a_partial_batch_is_delivered_after_flush_interval_without_flush() -> None:
    memory = MemoryHandler(name="memory")
    tel = make([memory], batch_size=1000, flush_interval=0.05)
    tel.start()
    tel.logger.info("lonely", i=1)
    for _ in range(400):
        if memory.records:
            break
        await asyncio.sleep(0.01)
    assert ids(memory) == [1]
    await tel.shutdown()


@pytest.mark.asyncio
async def test_a_burst_on_the_loop_wakes_the_consumer_once_and_every_record_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst of records made on the loop's thread without yielding wakes the sleeping
    consumer once, not once per record (each wake was two calls on the application's path),
    and the consumer, run at the loop's next turn, still gets every record of the burst and of
    the bursts after it, with no flush."""
    woken: list[int] = []
    wake_now = Lane._wake_now

    def counted(lane: Lane) -> None:
        woken.append(len(lane.buf))
        wake_now(lane)

    monkeypatch.setattr(Lane, "_wake_now", counted)
    memory = MemoryHandler(name="memory")
    tel = make([memory], batch_size=1000, flush_interval=0.05)
    tel.start()
    await asyncio.sleep(0.01)  # the consumer is asleep, waiting for a first record
    for burst in range(3):
        for i in range(200):
            tel.logger.info("x", i=burst * 200 + i)
        for _ in range(400):
            if len(memory.records) == (burst + 1) * 200:
                break
            await asyncio.sleep(0.01)
        assert ids(memory) == list(range((burst + 1) * 200))
    assert woken == [1, 1, 1]  # each burst: its first record wakes the consumer, no other
    await tel.shutdown()


# ---------------------------------------------------------------------------- failure isolation


@pytest.mark.asyncio
async def test_failing_and_hanging_handlers_do_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = FailingHandler(name="failing", kinds=["log"])
    hanging = HangingHandler(name="hanging", kinds=["log"])
    memory = MemoryHandler(name="memory")
    tel = make([failing, hanging, memory], batch_size=10, flush_interval=0.01,
               handler_timeout=0.2)
    tel.start()
    for i in range(100):
        tel.logger.info("x", i=i)  # never raises into the caller
    await tel.flush(0.5)
    for _ in range(200):
        if len(memory.records) == 100:
            break
        await asyncio.sleep(0.01)
    assert ids(memory) == list(range(100))
    stats = tel.stats()
    assert stats["memory"]["dropped"] == {}
    assert stats["failing"]["dropped"] == {"handler_error": 100}
    assert stats["failing"]["failed_batches"] == failing.calls
    # the error is logged once per cause, not once per batch
    assert caplog.text.count("disk on fire") == 1
    report = await tel.shutdown(timeout=0.5)
    hung = tel.stats()["hanging"]["dropped"]
    assert hung.get("handler_timeout", 0) + report.undelivered["hanging"] == 100


@pytest.mark.asyncio
async def test_a_failing_filter_is_isolated_and_filtered_records_are_counted() -> None:
    def only_even(record: Record) -> bool:
        return bool(record[3]["i"] % 2 == 0)

    def broken(record: Record) -> bool:
        raise ValueError("bad filter")

    even, bad = MemoryHandler(name="even", filter=only_even), MemoryHandler(name="bad",
                                                                           filter=broken)
    tel = make([even, bad], flush_interval=0.01)
    tel.start()
    for i in range(10):
        tel.logger.info("x", i=i)
    await tel.flush(5)
    assert ids(even) == [0, 2, 4, 6, 8]
    assert tel.stats()["even"]["filtered"] == 5
    assert tel.stats()["bad"]["dropped"] == {"handler_error": 10}
    await tel.shutdown()


@pytest.mark.asyncio
async def test_level_and_kind_routing() -> None:
    errors = MemoryHandler(name="errors", level="error")
    everything = MemoryHandler(name="everything")
    no_logs = MemoryHandler(name="no_logs", kinds=["metric"])
    tel = make([errors, everything, no_logs], flush_interval=0.01)
    tel.start()
    log = tel.logger
    log.debug("d", i=0)
    log.error("e", i=1)
    log.fatal("f", i=2)
    await tel.flush(5)
    assert ids(errors) == [1, 2]
    assert ids(everything) == [0, 1, 2]
    assert no_logs.records == []
    await tel.shutdown()


# ---------------------------------------------------------------------------- flush and shutdown


@pytest.mark.asyncio
async def test_flush_waits_for_delivery_and_handler_flush() -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], batch_size=1000, flush_interval=10)
    tel.start()
    for i in range(5):
        tel.logger.info("x", i=i)
    flushing = asyncio.create_task(tel.flush(5))
    await asyncio.sleep(0.05)
    assert not flushing.done(), "flush must wait for the handler"
    gate.gate.set()
    assert await flushing is True
    assert ids(gate) == list(range(5))
    assert gate.flushes == 1
    await tel.shutdown()


@pytest.mark.asyncio
async def test_flush_reports_false_when_a_batch_before_it_failed() -> None:
    failing, memory = FailingHandler(name="failing"), MemoryHandler(name="memory")
    tel = make([failing, memory], flush_interval=0.01)
    tel.start()
    tel.logger.info("x", i=0)
    assert await tel.flush(5) is False
    assert ids(memory) == [0]
    assert await tel.flush(5) is True  # nothing failed since the last flush
    await tel.shutdown()


@pytest.mark.asyncio
async def test_flush_reports_false_when_it_times_out() -> None:
    gate = GateHandler(name="gate")
    tel = make([gate], flush_interval=0.01)
    tel.start()
    tel.logger.info("x", i=0)
    assert await tel.flush(0.1) is False
    gate.gate.set()
    assert await tel.flush(5) is True
    await tel.shutdown()


@pytest.mark.asyncio
async def test_shutdown_delivers_everything_queued_then_closes() -> None:
    memory = MemoryHandler(name="memory")
    tel = make([memory], batch_size=10, flush_interval=10)
    tel.start()
    for i in range(1000):
        tel.logger.info("x", i=i)
    report = await tel.shutdown(timeout=5)
    assert report.complete
    assert ids(memory) == list(range(1000))
    assert memory.closed == 1
    tel.logger.info("late", i=1)
    assert tel.stats()["memory"]["dropped"] == {"closed": 1}
    again = await tel.shutdown()
    assert again.complete
    assert memory.closed == 1


@pytest.mark.asyncio
async def test_shutdown_timeout_reports_what_was_not_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, memory = GateHandler(name="gate"), MemoryHandler(name="memory")
    tel = make([gate, memory], batch_size=10, flush_interval=0.01)
    tel.start()
    for i in range(100):
        tel.logger.info("x", i=i)
    await until_entered(gate)
    report = await tel.shutdown(timeout=0.2)
    assert not report.complete
    assert report.undelivered == {"gate": 100, "memory": 0}
    assert tel.stats()["gate"]["dropped"] == {"shutdown_timeout": 100}
    assert ids(memory) == list(range(100))
    assert "gate: 100" in str(report)
    assert "gate: 100" in caplog.text


def test_sync_program_uses_a_private_loop_thread() -> None:
    memory = MemoryHandler(name="memory")
    tel = make([memory], flush_interval=0.01)
    tel.start()
    assert tel._pipeline.owns_loop
    thread = tel._pipeline._thread
    assert thread is not None
    assert thread.name == "pontem-async-pipeline"
    assert thread.is_alive()
    for i in range(500):
        tel.logger.info("x", i=i)
    assert tel.flush_sync(5)
    assert ids(memory) == list(range(500))
    report = tel.shutdown_sync(5)
    assert report.complete
    assert memory.closed == 1
    assert not thread.is_alive()  # other tests' instances may still run theirs


@pytest.mark.asyncio
async def test_sync_flush_from_the_pipeline_loop_is_refused(running: Telemetry) -> None:
    with pytest.raises(RuntimeError, match=r"await telemetry\.flush"):
        running.flush_sync()


def test_asyncio_run_teardown_delivers_what_is_queued() -> None:
    memory = MemoryHandler(name="memory")

    async def main() -> Telemetry:
        tel = make([memory], batch_size=1000, flush_interval=60)
        tel.start()
        for i in range(300):
            tel.logger.info("x", i=i)
        return tel  # no flush, no shutdown: asyncio.run cancels the consumer tasks

    tel = asyncio.run(main())
    assert ids(memory) == list(range(300))
    assert memory.closed == 1
    tel.logger.info("after the loop closed", i=1)  # must not raise, and is counted
    assert tel.stats()["memory"]["dropped"] == {"closed": 1}


@pytest.mark.asyncio
async def test_async_telemetry_from_another_loop_thread_flushes_and_shuts_down() -> None:
    memory = MemoryHandler(name="memory")
    tel = make([memory], flush_interval=0.01)
    await asyncio.to_thread(tel.start)  # started in a thread with no loop: private loop
    for i in range(50):
        tel.logger.info("x", i=i)
    assert await tel.flush(5)  # awaited from this (different) loop
    assert ids(memory) == list(range(50))
    assert (await tel.shutdown()).complete


# ---------------------------------------------------------------------------- batching properties

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch_size=st.integers(1, 64),
    queue_size=st.integers(1, 200),
    n=st.integers(0, 600),
    producers=st.integers(1, 4),
    flushes=st.lists(st.integers(0, 600), max_size=3),
)
def test_batching_keeps_order_and_delivers_each_record_once(
    batch_size: int, queue_size: int, n: int, producers: int, flushes: list[int]
) -> None:
    """Whatever the sizes, with overflow=block: each producer's records arrive once, in its
    order; no batch exceeds batch_size; flushes in between change nothing of that."""
    memory = MemoryHandler(name="memory")
    tel = make([memory], batch_size=batch_size, queue_size=queue_size, overflow="block",
               flush_interval=0.005)
    tel.start()

    def produce(p: int) -> None:
        for k in range(n):
            tel.logger.info("x", i=p * 1_000_000 + k)
            if k in flushes and p == 0:
                assert tel.flush_sync(10)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tel.shutdown_sync(10).complete
    got = ids(memory)
    for p in range(producers):
        mine = [i - p * 1_000_000 for i in got if i // 1_000_000 == p]
        assert mine == list(range(n))
    assert len(got) == n * producers
    assert all(1 <= len(batch) <= batch_size for batch in memory.batches)
