"""The handler contract (``pontem_async.handlers.base``), checked for every handler shipped.

Every test here runs once per entry of ``CASES``. A case describes how to build one handler
and how to read back what reached its destination, so the same checks apply to a stream, a file
set, an in-memory list, and later to an OTLP collector or a RabbitMQ queue.

Adding a handler (OTLP, RabbitMQ, ...): write one factory and append one ``Case``::

    def build_otlp(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
        collector = ...                                  # a real local receiver
        handler = wrap(OTLPHandler)(endpoint=collector.url, **options)
        return Built(
            handler,
            read_back=lambda: [log.body for log in collector.logs],
            released=lambda: handler_session_is_closed(handler),
        )

    CASES.append(Case("otlp", build_otlp))

The factory contract:

- ``directory`` is a fresh directory the handler may use (distinct per built handler);
- ``wrap`` must be applied to the handler *class* before instantiating it (the tests pass a
  subclass factory to inject failures or count lifecycle calls);
- ``options`` (``name``, ``kinds``, ``level``, ``filter``) go to the constructor unchanged;
- ``read_back()`` returns the bodies of the log records found at the destination, in the order
  they arrived there (an empty list when nothing arrived);
- ``released()`` is True once the handler has let go of what it owns (open files, sessions,
  connections) and left alone what it does not own (a caller's stream stays usable).

Tests that need a service (a broker, a collector) should be marked like the rest of the suite
(``broker``) and fail loudly when the service is required but missing.

Records are logs only: other record kinds have no encoder in this package yet, so routing by
``kinds`` is checked by a handler that must receive none of them.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pontem_async import Telemetry
from pontem_async.handlers import ALL_KINDS, Handler, RotatingFileHandler, StreamHandler
from pontem_async.records import LogRecord, Record
from pontem_async.testing import MemoryHandler

H = TypeVar("H", bound=Handler)
Wrap = Callable[[type[Any]], type[Any]]


@dataclass
class Built:
    handler: Handler
    read_back: Callable[[], list[str]]
    released: Callable[[], bool]


@dataclass
class Case:
    id: str
    build: Callable[[Path, Wrap, dict[str, Any]], Built]


def unchanged(cls: type[H]) -> type[H]:
    return cls


# ---------------------------------------------------------------------------- the cases


def build_stream_json(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    stream = io.StringIO()
    handler = wrap(StreamHandler)(stream=stream, format="json", **options)
    return Built(
        handler,
        read_back=lambda: [json.loads(line)["body"] for line in stream.getvalue().splitlines()],
        released=lambda: not stream.closed,  # the caller's stream is not the handler's to close
    )


def build_stream_console(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    stream = io.StringIO()
    handler = wrap(StreamHandler)(stream=stream, format="console", **options)
    # a console line is "time LEVEL body key=value ..."; the bodies used here have no spaces
    return Built(
        handler,
        read_back=lambda: [line.split()[2] for line in stream.getvalue().splitlines()],
        released=lambda: not stream.closed,
    )


def read_file_set(path: Path) -> list[str]:
    """Bodies from the current file and every rotated one (``.gz`` too), oldest first."""
    if not path.parent.exists():
        return []
    rotated = [p for p in path.parent.iterdir() if p != path]
    rotated.sort(key=lambda p: int(p.name[len(path.name) + 1 :].removesuffix(".gz")), reverse=True)
    bodies: list[str] = []
    for file in [*rotated, path] if path.exists() else rotated:
        content = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
        bodies.extend(json.loads(line)["body"] for line in content.splitlines())
    return bodies


def descriptors_on(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def build_file(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    path = directory / "records.jsonl"
    # small files, so ordering is also checked across rotations and gzip
    handler = wrap(RotatingFileHandler)(path, max_bytes=2048, backup_count=1000, **options)
    return Built(
        handler, read_back=lambda: read_file_set(path), released=lambda: descriptors_on(path) == 0
    )


def build_memory(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    handler = wrap(MemoryHandler)(**options)
    return Built(
        handler,
        read_back=lambda: [record.body for record in handler.logs],
        released=lambda: handler.closed >= 1,
    )


def build_sql(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    from pontem_async.handlers import SQLHandler

    path = directory / "incidents.db"
    # every level and kind, like the other cases (SQLHandler defaults to error logs only; it
    # skips records of other kinds, as the table holds logs)
    defaults = {"level": "trace", "kinds": sorted(ALL_KINDS)}
    handler = wrap(SQLHandler)(f"sqlite+aiosqlite:///{path}", **{**defaults, **options})

    def read_back() -> list[str]:
        if not path.exists():
            return []
        with closing(sqlite3.connect(path)) as db:
            return [row[0] for row in db.execute("SELECT message FROM error_logs ORDER BY id")]

    return Built(handler, read_back=read_back, released=lambda: handler._engine is None)


def build_rabbitmq(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    from amqp_helpers import ThreadedQueue, broker_url, unique

    from pontem_async.handlers import RabbitMQHandler

    url, exchange = broker_url(), unique("contract")  # a queue bound before anything is sent
    handler = wrap(RabbitMQHandler)(url, exchange, publish_timeout=5.0, **options)
    queue = ThreadedQueue(url, exchange, owner=handler)
    return Built(
        handler, read_back=queue.read_back, released=lambda: handler._connection is None
    )


_otlp_collector: list[Any] = []  # one collector thread for every OTLP case, closed at exit


def build_otlp(directory: Path, wrap: Wrap, options: dict[str, Any]) -> Built:
    import atexit
    import uuid

    from otlp_receiver import Collector

    from pontem_async.handlers import OTLPHandler

    if not _otlp_collector:
        _otlp_collector.append(Collector())
        atexit.register(_otlp_collector[0].close)
    collector = _otlp_collector[0]
    prefix = f"/{uuid.uuid4().hex}"  # this handler's own corner of the shared collector
    sessions: list[Any] = []

    class Tracked(wrap(OTLPHandler)):  # type: ignore[misc]
        async def open(self) -> None:
            await super().open()
            sessions.append(self._delivery.session)

    handler = Tracked(collector.url + prefix, timeout=5.0, **options)

    def read_back() -> list[str]:
        assert collector.invalid == []  # every body was strictly valid OTLP
        return collector.log_bodies(prefix)

    return Built(
        handler,
        read_back=read_back,
        released=lambda: handler._delivery is None and all(s.closed for s in sessions),
    )

CASES: list[Case] = [
    Case("stream-json", build_stream_json),
    Case("stream-console", build_stream_console),
    Case("rotating-file", build_file),
    Case("memory", build_memory),
    Case("sql-sqlite", build_sql),
    Case("rabbitmq", build_rabbitmq),  # the real broker: skips without it, like `broker` tests
    Case("otlp", build_otlp),  # a real aiohttp collector on 127.0.0.1 (tests/otlp_receiver.py)
]


@pytest.fixture(params=CASES, ids=lambda case: case.id)
def case(request: pytest.FixtureRequest) -> Case:
    assert isinstance(request.param, Case)
    return request.param


# ---------------------------------------------------------------------------- helpers


def fail_first_emit(cls: type[H]) -> type[H]:
    """A subclass whose first ``emit`` raises (a transient failure), later ones deliver."""

    class FailsOnce(cls):  # type: ignore[valid-type,misc]
        failed = False

        async def emit(self, batch: Sequence[Record]) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("injected failure on the first batch")
            await super().emit(batch)

    return FailsOnce


class LifecycleCalls:
    """A ``wrap`` that counts ``open``/``close`` calls made on the built handler."""

    def __init__(self) -> None:
        self.opens = 0
        self.closes = 0

    def __call__(self, cls: type[H]) -> type[H]:
        calls = self

        class Counted(cls):  # type: ignore[valid-type,misc]
            async def open(self) -> None:
                calls.opens += 1
                await super().open()

            async def close(self, timeout: float | None = None) -> None:
                calls.closes += 1
                await super().close(timeout)

        return Counted


class AlwaysFails(Handler):
    async def emit(self, batch: Sequence[Record]) -> None:
        raise OSError("destination unreachable")


def bodies(start: int, stop: int) -> list[str]:
    return [f"msg-{i:04d}" for i in range(start, stop)]


def records(names: list[str]) -> list[Record]:
    return [
        LogRecord(time.time_ns(), 9, name, {"i": n}, "contract") for n, name in enumerate(names)
    ]


@asynccontextmanager
async def running(*handlers: Handler, **options: Any) -> AsyncIterator[Telemetry]:
    """A started Telemetry on the test's loop; a long flush_interval, so delivery before a
    ``flush()`` only happens because batches fill up."""
    telemetry = Telemetry(
        "contract",
        handlers=list(handlers),
        install_signal_handlers=False,
        **{"flush_interval": 60.0, **options},
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=5)


# ---------------------------------------------------------------------------- the contract


@pytest.mark.asyncio
async def test_order_is_preserved_within_and_across_batches(case: Case, tmp_path: Path) -> None:
    built = case.build(tmp_path, unchanged, {"name": "subject"})
    async with running(built.handler, batch_size=7) as telemetry:
        for body in bodies(0, 100):
            telemetry.logger.info(body)
        assert await telemetry.flush(5)
        assert built.read_back() == bodies(0, 100)
        for body in bodies(100, 131):
            telemetry.logger.info(body)
        assert await telemetry.flush(5)
        assert built.read_back() == bodies(0, 131)
    assert telemetry.stats()["subject"]["delivered"] == 131


@pytest.mark.asyncio
async def test_flush_makes_everything_submitted_before_readable(case: Case, tmp_path: Path) -> None:
    built = case.build(tmp_path, unchanged, {"name": "subject"})
    async with running(built.handler, batch_size=512) as telemetry:
        for round_ in range(3):
            for body in bodies(round_ * 5, round_ * 5 + 5):
                telemetry.logger.info(body)
            assert await telemetry.flush(5)
            assert built.read_back() == bodies(0, round_ * 5 + 5)


def test_flush_from_a_synchronous_program_makes_records_readable(
    case: Case, tmp_path: Path
) -> None:
    built = case.build(tmp_path, unchanged, {"name": "subject"})
    telemetry = Telemetry(
        "contract", handlers=[built.handler], flush_interval=60.0, install_signal_handlers=False
    )
    telemetry.start()  # no running loop: the pipeline runs its private loop thread
    try:
        for body in bodies(0, 20):
            telemetry.logger.info(body)
        assert telemetry.flush_sync(5)
        assert built.read_back() == bodies(0, 20)
    finally:
        report = telemetry.shutdown_sync(5)
    assert report.complete
    assert built.released()


@pytest.mark.asyncio
async def test_close_twice_is_harmless(case: Case, tmp_path: Path) -> None:
    built = case.build(tmp_path / "used", unchanged, {})
    await built.handler.open()
    await built.handler.emit(records(bodies(0, 3)))
    await built.handler.close()
    await built.handler.close()
    assert built.read_back() == bodies(0, 3)
    assert built.released()
    never_opened = case.build(tmp_path / "unused", unchanged, {})
    await never_opened.handler.close()
    await never_opened.handler.close()
    assert never_opened.read_back() == []


@pytest.mark.asyncio
async def test_kinds_level_and_filter_routing_is_respected(case: Case, tmp_path: Path) -> None:
    warn_and_up = case.build(tmp_path / "warn", unchanged, {"name": "warn", "level": "warn"})
    no_logs = case.build(tmp_path / "metrics", unchanged, {"name": "metrics", "kinds": ["metric"]})
    logs = case.build(tmp_path / "logs", unchanged, {"name": "logs", "kinds": ["log"]})
    keep_only = case.build(
        tmp_path / "filtered",
        unchanged,
        {"name": "filtered", "filter": lambda r: r.attributes.get("keep") is True},
    )
    handlers = (warn_and_up, no_logs, logs, keep_only)
    async with running(*(b.handler for b in handlers)) as telemetry:
        log = telemetry.logger
        log.trace("msg-trace")
        log.debug("msg-debug", keep=True)
        log.info("msg-info")
        log.warn("msg-warn", keep=True)
        log.error("msg-error")
        log.fatal("msg-fatal", keep=False)
        assert await telemetry.flush(5)
        assert warn_and_up.read_back() == ["msg-warn", "msg-error", "msg-fatal"]
        assert no_logs.read_back() == []
        assert logs.read_back() == [
            "msg-trace", "msg-debug", "msg-info", "msg-warn", "msg-error", "msg-fatal"
        ]  # fmt: skip
        assert keep_only.read_back() == ["msg-debug", "msg-warn"]
    assert telemetry.stats()["filtered"]["filtered"] == 4


@pytest.mark.asyncio
async def test_a_failing_handler_does_not_affect_the_others(case: Case, tmp_path: Path) -> None:
    healthy = case.build(tmp_path / "healthy", unchanged, {"name": "healthy"})
    # log-only: their drops are then exported as the pontem.dropped_records metric, which
    # must reach the healthy handler, not add to the failing ones' counts
    flaky = case.build(tmp_path / "flaky", fail_first_emit, {"name": "flaky", "kinds": ["log"]})
    broken = AlwaysFails(name="broken", kinds=["log"])
    async with running(broken, healthy.handler, flaky.handler, batch_size=512) as telemetry:
        for body in bodies(0, 10):
            telemetry.logger.info(body)
        await telemetry.flush(5)  # failures are counted and logged, never raised
        for body in bodies(10, 20):
            telemetry.logger.info(body)
        await telemetry.flush(5)
        assert healthy.read_back() == bodies(0, 20)
        assert flaky.read_back() == bodies(10, 20)  # the failed batch is dropped, not retried
    stats = telemetry.stats()
    assert stats["healthy"]["delivered"] == 21  # 20 logs + the final pontem.dropped_records
    assert stats["healthy"]["dropped"] == {}
    assert stats["flaky"]["dropped"] == {"handler_error": 10}
    assert stats["flaky"]["delivered"] == 10
    assert stats["broken"]["dropped"] == {"handler_error": 20}


@pytest.mark.asyncio
async def test_async_with_opens_and_closes_the_handler(case: Case, tmp_path: Path) -> None:
    calls = LifecycleCalls()
    built = case.build(tmp_path, calls, {})
    async with built.handler as handler:
        assert handler is built.handler
        assert (calls.opens, calls.closes) == (1, 0)
        await handler.emit(records(bodies(0, 4)))
        await handler.emit(records(bodies(4, 6)))
    assert (calls.opens, calls.closes) == (1, 1)
    assert built.read_back() == bodies(0, 6)
    assert built.released()
