"""SQLHandler: error logs as rows of a SQL table, for "top recurring incidents" queries.

``SQLHandler("postgresql+asyncpg://app@db/telemetry")`` writes every log record of level
``error`` and worse as one row of ``error_logs`` (schema in ``_sql_schema``, column sources in
``_sql_rows``); :func:`top_incidents` and ``pontem-async incidents URL`` group them by
fingerprint. It runs on SQLAlchemy's asyncio engine, an optional dependency:
``pip install 'pontem-async[sql]'`` brings SQLAlchemy, asyncpg and aiosqlite.
``sqlite+aiosqlite:///incidents.db`` is the embedded default, no server needed.

Why it is written the way it is:

- **One multi-row INSERT per batch**, in one transaction: the pipeline batches, the handler
  makes each batch one ``INSERT ... VALUES (...), (...) RETURNING id`` statement (split only
  past the drivers' limit of about 32,000 bind parameters). Never a round trip per record.
  The database I/O (engine, statement, table creation, error triage) is in ``_sql_io``.
- **The database being down or slow never reaches the application.** Rows go into a bounded
  retry buffer (``_sql_buffer``) and leave it only once committed. A failed write keeps them
  and backs off (``retry_interval`` doubling up to ``max_retry_interval``); while backing off,
  ``emit`` only buffers, so a dead server does not slow the pipeline down, and a retry task
  writes the backlog as soon as the server answers, without waiting for the next error log.
  Each attempt is bounded by ``timeout``. When the buffer is full the oldest rows go, counted
  as dropped (``retry_buffer_full``); rows the database refuses for their content (an integrity
  or data error) are counted as ``rejected``; rows still unwritten when ``close()`` gives up
  are counted as ``unwritten_at_close``. All show in ``telemetry.stats()``.
- ``flush()`` writes the backlog now, ignoring the back-off, and raises when rows remain or
  were dropped since the previous flush, so ``await telemetry.flush()`` returns False then.
- **The password never shows**: reprs, ``describe()``/``check-config``, and every message this
  module logs or raises render the URL as ``user:***@host``; ``password`` may also be passed on
  its own (declared in ``secret_fields``).
- The table is created on the first write (``create_table=True``), not in ``open()``, so a
  service starting while its database is still down buffers instead of dropping. Two processes
  creating it at once is harmless; after any failed write, creation is checked again, so a
  table dropped under a running service comes back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pontem_async.handlers.base import Handler
from pontem_async.records import Level, LogRecord, Record

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"pontem_async.handlers.SQLHandler needs SQLAlchemy's asyncio support and a driver "
        f"({_missing}); install them with: pip install 'pontem-async[sql]'"
    ) from _missing

from pontem_async.handlers._sql_buffer import RetryBuffer
from pontem_async.handlers._sql_incidents import Incident, incidents_query, top_incidents
from pontem_async.handlers._sql_io import (
    MAX_BIND_PARAMETERS,
    describe_error,
    ensure_table,
    insert_rows,
    make_engine,
    refused_content,
    returning_insert,
)
from pontem_async.handlers._sql_rows import to_row
from pontem_async.handlers._sql_schema import COLUMNS, error_logs_table
from pontem_async.handlers._sql_url import DEFAULT_URL, masked, parse_url, sqlite_path

__all__ = [
    "DEFAULT_URL",
    "Incident",
    "SQLHandler",
    "error_logs_table",
    "incidents_query",
    "top_incidents",
]

_internal = logging.getLogger("pontem_async")


class SQLHandler(Handler):
    """Write log records (``error`` and worse by default) as rows of a SQL table.

    Args:
        url: SQLAlchemy URL with an asyncio driver: ``sqlite+aiosqlite:///incidents.db`` (the
            default; the directory is created) or ``postgresql+asyncpg://user:pass@host/db``.
            ``postgresql://`` and ``sqlite://`` get their asyncio driver added.
        table: the table's name (the default schema, see ``error_logs_table``), or your own
            ``sqlalchemy.Table``: the columns it shares with the default schema are filled,
            others are left to their defaults.
        level: minimum severity written (``error``).
        create_table: create the table and its indexes if missing, on the first write.
        password: the database password, when it should not be part of ``url`` (it overrides
            the URL's).
        buffer_size: rows kept while the database cannot be written to; beyond that the oldest
            are dropped and counted (``retry_buffer_full``).
        timeout: seconds one write (connect, create, insert, commit) may take.
        retry_interval: seconds before the first retry after a failed write; doubles on each
            failure, up to ``max_retry_interval``.
        max_retry_interval: longest wait between retries.
        engine_options: extra keyword arguments for ``create_async_engine`` (``pool_size``,
            ``connect_args``, ``echo``...).
        **options: ``name``, ``kinds`` (``log`` by default), ``filter`` (see :class:`Handler`).

    Raises:
        TypeError, ValueError: an argument is wrong; the message starts with its name.
    """

    default_kinds = frozenset({"log"})
    secret_fields = frozenset({"password"})

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        table: str | sa.Table = "error_logs",
        level: Level | int | str = Level.ERROR,
        create_table: bool = True,
        *,
        password: str | None = None,
        buffer_size: int = 10_000,
        timeout: float = 10.0,
        retry_interval: float = 0.5,
        max_retry_interval: float = 30.0,
        engine_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(level=level, **options)
        if password is not None and not isinstance(password, str):
            raise TypeError(f"password: expected a string, got {type(password).__name__}")
        self.url: URL = parse_url(url, password=password)
        if isinstance(table, sa.Table):
            self.table: sa.Table = table
        elif isinstance(table, str) and table.strip():
            self.table = error_logs_table(table.strip())
        else:
            raise ValueError(f"table: expected a table name or a sqlalchemy.Table, got {table!r}")
        self._columns = tuple(column for column in COLUMNS if column in self.table.c)
        if not self._columns:
            raise ValueError(
                f"table: {self.table.name!r} has none of the columns {', '.join(COLUMNS)}"
            )
        if not isinstance(create_table, bool):
            raise TypeError(f"create_table: expected a bool, got {type(create_table).__name__}")
        self.create_table = create_table
        for arg, value in (
            ("timeout", timeout),
            ("retry_interval", retry_interval),
            ("max_retry_interval", max_retry_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{arg}: expected a positive number of seconds, got {value!r}")
        self.timeout = float(timeout)
        self.retry_interval = float(retry_interval)
        self.max_retry_interval = max(float(max_retry_interval), self.retry_interval)
        if engine_options is not None and not isinstance(engine_options, Mapping):
            raise TypeError(
                f"engine_options: expected a mapping, got {type(engine_options).__name__}"
            )
        self.engine_options: dict[str, Any] = dict(engine_options or {})
        self._buffer = RetryBuffer(buffer_size)
        self._rows_per_insert = max(1, MAX_BIND_PARAMETERS // len(self._columns))
        self._insert = returning_insert(self.table, self._columns)
        self._engine: AsyncEngine | None = None
        self._lock: asyncio.Lock | None = None
        self._table_ready = not create_table
        self._delay = 0.0  # current back-off; 0 while writes succeed
        self._retry_at = 0.0  # loop time before which emit only buffers
        self._retry_task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._errors_logged: set[str] = set()
        self._dropped: dict[str, int] = {}
        self._lost_since_flush: dict[str, int] = {}
        self.written = 0

    @property
    def buffer_size(self) -> int:
        return self._buffer.capacity

    # ------------------------------------------------------------------ the contract

    async def open(self) -> None:
        """Create the engine (no connection yet: a database that is down only delays rows)."""
        if self._engine is not None:
            return
        path = sqlite_path(self.url)
        if path is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: os.makedirs(os.path.dirname(path), exist_ok=True)
            )
        self._engine = make_engine(self.url, self.timeout, self.engine_options)
        self._lock = asyncio.Lock()

    async def emit(self, batch: Sequence[Record]) -> None:
        """Buffer ``batch``'s rows and write the buffer, unless backing off after a failure."""
        if self._engine is None:
            await self.open()
        rows: list[dict[str, Any]] = []
        for record in batch:
            if isinstance(record, LogRecord):
                row = to_row(record)
                rows.append(row if len(self._columns) == len(COLUMNS) else self._subset(row))
        dropped = self._buffer.add(rows)
        if dropped:
            self._lost("retry_buffer_full", dropped)
            self._log_once(
                "full",
                "handler %r: the retry buffer is full (%d rows); the oldest rows are dropped "
                "until %s can be written to again (counted as 'retry_buffer_full')",
                self.name,
                self._buffer.capacity,
                masked(self.url),
            )
        if self._buffer:
            await self._drain(force=False)

    async def flush(self, timeout: float | None = None) -> None:
        """Write every buffered row now. Raises ``ConnectionError`` when some remain, and
        ``RuntimeError`` when rows were dropped since the previous flush (so
        ``telemetry.flush()`` says False: not everything arrived)."""
        written = self._engine is None or not self._buffer or await self._drain(force=True)
        lost, self._lost_since_flush = self._lost_since_flush, {}  # reported once, either way
        if not written:
            raise ConnectionError(
                f"handler {self.name!r}: {len(self._buffer)} rows wait in the retry buffer: "
                f"cannot write to {masked(self.url)}: {self._last_error}"
            )
        if lost:
            counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(lost.items()))
            raise RuntimeError(
                f"handler {self.name!r}: rows were dropped since the last flush ({counts})"
            )

    async def close(self, timeout: float | None = None) -> None:
        """Stop retrying, make a last attempt at the backlog (counting what stays unwritten as
        dropped), release the connections. Idempotent; a later ``emit`` opens again."""
        engine = self._engine
        if engine is None:
            return
        task, self._retry_task = self._retry_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            if self._buffer and not await self._drain(force=True):
                self._give_up()
        except asyncio.CancelledError:  # the pipeline's deadline: still count what stays
            self._give_up()
            raise
        finally:
            self._engine = None
            await engine.dispose()

    def _give_up(self) -> None:
        lost = self._buffer.clear()
        if not lost:
            return
        self._lost("unwritten_at_close", lost)
        _internal.error(
            "handler %r: closing with %d rows that could not be written to %s (%s); they are "
            "counted as dropped ('unwritten_at_close')",
            self.name,
            lost,
            masked(self.url),
            self._last_error or "closed before the write finished",
        )

    def stats(self) -> dict[str, Any]:
        return {
            "buffered": len(self._buffer),
            "buffer_size": self._buffer.capacity,
            "written": self.written,
            "dropped": dict(self._dropped),
            "last_error": self._last_error,
        }

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            url=masked(self.url),
            table=self.table.name,
            create_table=self.create_table,
            buffer_size=self._buffer.capacity,
            timeout=self.timeout,
        )
        return info

    def __repr__(self) -> str:
        return f"<SQLHandler name={self.name!r} url={masked(self.url)!r} table={self.table.name!r}>"

    # ------------------------------------------------------------------ writing

    def _subset(self, row: dict[str, Any]) -> dict[str, Any]:
        return {column: row[column] for column in self._columns}

    async def _drain(self, *, force: bool) -> bool:
        """Write buffered rows, oldest first, one transaction per multi-row INSERT. Returns True
        once the buffer is empty; False after a failure (the rows stay, a retry is planned) or
        while backing off (``force`` ignores the back-off)."""
        assert self._lock is not None
        loop = asyncio.get_running_loop()
        async with self._lock:
            while self._buffer:
                if not force and loop.time() < self._retry_at:
                    return False
                rows = self._buffer.peek(self._rows_per_insert)
                try:
                    await asyncio.wait_for(self._write(rows), self.timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if refused_content(exc):
                        self._buffer.remove(len(rows))
                        self._lost("rejected", len(rows))
                        self._log_once(
                            f"rejected:{type(exc).__name__}",
                            "handler %r: %s refused %d rows (%s); they are counted as dropped "
                            "('rejected')",
                            self.name,
                            masked(self.url),
                            len(rows),
                            describe_error(exc, self.url, self.timeout),
                        )
                        continue
                    self._failed(exc, loop)
                    return False
                self._buffer.remove(len(rows))
                self.written += len(rows)
                if self._delay:
                    _internal.warning(
                        "handler %r: %s answers again; writing the %d buffered rows",
                        self.name,
                        masked(self.url),
                        len(self._buffer) + len(rows),
                    )
                    self._delay = self._retry_at = 0.0
                    self._last_error = None
                    # the next outage is news again
                    self._errors_logged = {k for k in self._errors_logged if k[:5] != "down:"}
            return True

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        engine = self._engine
        assert engine is not None
        if not self._table_ready:
            await ensure_table(engine, self.table)
            self._table_ready = True
        await insert_rows(engine, self.table, self._insert, rows, self._rows_per_insert)

    def _failed(self, exc: Exception, loop: asyncio.AbstractEventLoop) -> None:
        """A write failed for a reason that may pass: keep the rows, back off, plan a retry."""
        self._last_error = describe_error(exc, self.url, self.timeout)
        if self.create_table:
            self._table_ready = False  # the table may be what went away
        if self._delay:
            self._delay = min(self._delay * 2, self.max_retry_interval)
        else:
            self._delay = self.retry_interval
        self._retry_at = loop.time() + self._delay
        self._log_once(
            f"down:{self._last_error}",
            "handler %r: cannot write to %s (%s); %d rows wait in the retry buffer "
            "(capacity %d), retrying with back-off",
            self.name,
            masked(self.url),
            self._last_error,
            len(self._buffer),
            self._buffer.capacity,
        )
        task = self._retry_task
        if task is None or task.done():
            self._retry_task = loop.create_task(
                self._retry(), name=f"pontem-async:{self.name}:retry"
            )

    async def _retry(self) -> None:
        """Write the backlog once the back-off has passed, without waiting for a new record."""
        loop = asyncio.get_running_loop()
        while self._buffer and self._engine is not None:
            await asyncio.sleep(max(0.0, self._retry_at - loop.time()))
            if await self._drain(force=False):
                return

    def _lost(self, reason: str, n: int) -> None:
        """Count ``n`` rows dropped for ``reason``: here, in the pipeline's drop counters
        (``telemetry.stats()``, ``pontem.dropped_records``) and for the next flush."""
        self._dropped[reason] = self._dropped.get(reason, 0) + n
        self._lost_since_flush[reason] = self._lost_since_flush.get(reason, 0) + n
        self.count_dropped(reason, n)

    def _log_once(self, key: str, msg: str, *args: object) -> None:
        if key in self._errors_logged:
            return
        if len(self._errors_logged) < 64:
            self._errors_logged.add(key)
        _internal.warning(msg, *args)
