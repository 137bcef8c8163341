"""Test doubles for users' own tests: an in-memory handler and ``capture()``.

``capture()`` is the quick one: inside the block, records from the default telemetry (or the one
given) are appended to a list synchronously, bypassing queues, so assertions need no flush::

    from pontem_async.testing import capture

    def test_greets():
        with capture() as cap:
            greet("ada")
        assert cap.logs[0].body == "hello ada"
        assert cap.logs[0].attributes == {"user": "ada"}

``MemoryHandler`` is the faithful one: a real handler behind the real pipeline, for tests of
batching, routing and flush behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pontem_async.handlers.base import Handler
from pontem_async.records import Level, LogRecord, Record
from pontem_async.telemetry import Telemetry, get_default

__all__ = ["Captured", "MemoryHandler", "capture"]


class MemoryHandler(Handler):
    """Keeps every record it is given, in order, with its batches and lifecycle calls."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.records: list[Record] = []
        self.batches: list[list[Record]] = []
        self.opened = 0
        self.flushes = 0
        self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def emit(self, batch: Sequence[Record]) -> None:
        self.batches.append(list(batch))
        self.records.extend(batch)

    async def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1

    async def close(self, timeout: float | None = None) -> None:
        self.closed += 1

    @property
    def logs(self) -> list[LogRecord]:
        return [r for r in self.records if isinstance(r, LogRecord)]


class Captured:
    """What :func:`capture` collected."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    @property
    def logs(self) -> list[LogRecord]:
        return [r for r in self.records if isinstance(r, LogRecord)]

    @property
    def bodies(self) -> list[str]:
        return [r.body for r in self.logs]

    def of_kind(self, kind: str) -> list[Record]:
        return [r for r in self.records if r.kind == kind]


@contextmanager
def capture(
    telemetry: Telemetry | None = None, *, level: Level | int | str = Level.TRACE
) -> Iterator[Captured]:
    """Collect the records of ``telemetry`` (default: the module's) made inside the block.

    Records go to the returned :class:`Captured` instead of the handlers; logs below ``level``
    are skipped. The previous routing is restored on exit, even on error.
    """
    tel = telemetry if telemetry is not None else get_default()
    captured = Captured()
    min_level = int(Level.parse(level))

    def collect(record: Record) -> None:
        if record.kind != "log" or record[1] >= min_level:
            captured.records.append(record)

    saved_submit, saved_min = tel._submit, tel._min_log_severity
    tel._submit = collect
    tel._min_log_severity = min_level
    tel._changed()  # producers that cached the route (the profiler) look again
    try:
        yield captured
    finally:
        tel._submit, tel._min_log_severity = saved_submit, saved_min
        tel._changed()
