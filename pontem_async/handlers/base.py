"""The handler contract: what every destination of records implements.

A handler does I/O only. Batching, queueing, timers and failure isolation belong to the pipeline
(one bounded queue and one consumer task per handler), so a handler never owns a queue or a timer
loop of its own: it is handed a batch and delivers it.

The contract, which ``tests/test_handler_contract.py`` checks for every handler shipped here:

- ``await open()`` is called once, on the pipeline's loop, before the first ``emit``.
- ``await emit(batch)`` delivers a non-empty list of records in submission order. It reports
  failure in exactly one way: by raising. The pipeline then counts the batch's records as
  dropped with reason ``handler_error``, logs the cause once, and goes on with the next batch.
  Retrying is the handler's own decision (a network handler may keep a bounded retry buffer).
- ``await flush(timeout)`` returns once everything emitted so far is durable at the destination
  (written and flushed, answered, confirmed), or raises.
- ``await close(timeout)`` flushes and releases resources; calling it twice is harmless.
- None of them may hang forever: the pipeline also bounds each call with its own timeout.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from pontem_async.records import Level, Record

__all__ = ["ALL_KINDS", "Handler", "RecordFilter"]

_H = TypeVar("_H", bound="Handler")

ALL_KINDS: frozenset[str] = frozenset({"log", "metric", "profile", "event", "series"})
"""Every record kind the pipeline routes."""

RecordFilter = Callable[[Record], bool]
"""A predicate run on the consumer task; records for which it returns False are skipped."""


class Handler(abc.ABC):
    """Base class of all handlers.

    Args:
        name: identifies the handler in ``stats()``, drop counters and error messages; defaults
            to the class name in lower case. ``dict_config`` passes the config key.
        kinds: record kinds this handler accepts (``log``, ``metric``, ``profile``, ``event``,
            ``series``); all of them when omitted.
        level: minimum severity of log records (a :class:`Level`, number or name).
        filter: optional predicate; it runs on the consumer task, never on the caller.
    """

    default_kinds: frozenset[str] = ALL_KINDS
    env_overrides: ClassVar[Mapping[str, str]] = {}
    """Constructor arguments an environment variable overrides in ``dict_config``
    (``{"endpoint": "PONTEM_OTLP_ENDPOINT"}``): argument > environment > file > default."""
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Constructor arguments whose values are credentials: redacted by ``check-config``."""

    def __init__(
        self,
        *,
        name: str | None = None,
        kinds: Iterable[str] | None = None,
        level: Level | int | str = Level.TRACE,
        filter: RecordFilter | None = None,
    ) -> None:
        self.name: str = name if name is not None else type(self).__name__.lower()
        if kinds is None:
            self.kinds: frozenset[str] = self.default_kinds
        else:
            if isinstance(kinds, str):
                raise TypeError(f"kinds: expected a list of kinds, got the string {kinds!r}")
            chosen = frozenset(kinds)
            unknown = sorted(chosen - ALL_KINDS)
            if unknown:
                raise ValueError(
                    f"kinds: unknown record kind(s) {unknown}; expected some of {sorted(ALL_KINDS)}"
                )
            self.kinds = chosen
        self.level: Level = Level.parse(level, what="level")
        if filter is not None and not callable(filter):
            raise TypeError(f"filter: expected a callable, got {type(filter).__name__}")
        self.filter: RecordFilter | None = filter

    def accepts(self, kind: str) -> bool:
        """Whether records of ``kind`` are routed to this handler."""
        return kind in self.kinds

    async def open(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Acquire resources (files, sessions, connections). Called once before ``emit``."""

    @abc.abstractmethod
    async def emit(self, batch: Sequence[Record]) -> None:
        """Deliver ``batch`` (non-empty, in submission order); raise on failure."""

    async def flush(self, timeout: float | None = None) -> None:  # noqa: B027
        """Make everything emitted so far durable at the destination."""

    async def close(self, timeout: float | None = None) -> None:  # noqa: B027
        """Flush and release resources. Idempotent."""

    async def __aenter__(self: _H) -> _H:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """The handler's own counters (a retry buffer's depth, messages re-sent, ...), shown as
        ``telemetry.stats()[name]["handler"]`` when not empty. May be called from any thread:
        return a fresh dict of plain values. Empty by default."""
        return {}

    def count_dropped(self, reason: str, n: int) -> None:
        """Count ``n`` records lost *after* ``emit`` returned (a retry buffer overflowing while
        the destination is down, ...): they show in ``telemetry.stats()[name]["dropped"]`` and
        in ``pontem.dropped_records`` like the pipeline's own drops. The pipeline connects this
        when it takes the handler; before that (a handler driven directly) it does nothing."""
        sink = self._drop_sink
        if sink is not None and n > 0:
            sink(reason, n)

    _drop_sink: Callable[[str, int], None] | None = None
    """Set by the pipeline: where :meth:`count_dropped` goes."""

    def describe(self) -> dict[str, Any]:
        """Settings safe to show (no credentials); used by reprs and ``check-config``."""
        return {"name": self.name, "kinds": sorted(self.kinds), "level": self.level.name.lower()}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"
