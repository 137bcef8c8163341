"""The SQL handler's database I/O: the engine, table creation, the batch INSERT, error triage.

Kept apart from ``sql.py`` (buffering, back-off, accounting) so each reads on its own:

- :func:`make_engine`: an asyncio engine whose connections are checked before use
  (``pool_pre_ping``: after a server restart the first batch does not fail on a dead pooled
  connection), JSON via orjson, and a connect timeout for PostgreSQL.
- :func:`insert_rows`: one transaction, one multi-row ``INSERT ... VALUES (...), (...)`` per
  ``page_size`` rows. With SQLAlchemy's "insertmanyvalues" (PostgreSQL, SQLite >= 3.35) the
  statement is rendered from a cached one-row ``INSERT ... RETURNING``, as fast as the driver's
  executemany; ``insert().values(rows)`` would compile a new statement every batch (~0.1 s for
  512 rows), so it is only the fallback for dialects without it.
- :func:`ensure_table`: ``CREATE TABLE``/``CREATE INDEX`` when missing; losing the race to
  another process creating it at the same moment is not an error.
- :func:`refused_content` and :func:`describe_error`: which failures are the rows' fault (not
  worth retrying), and a one-line, password-free cause for logs and ``stats()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pontem_async.handlers._sql_url import scrub

__all__ = [
    "MAX_BIND_PARAMETERS",
    "describe_error",
    "ensure_table",
    "insert_rows",
    "make_engine",
    "refused_content",
    "returning_insert",
]

MAX_BIND_PARAMETERS = 32_000
"""Bind parameters per statement: asyncpg allows 32,767, SQLite >= 3.32 32,766."""


def make_engine(url: URL, timeout: float, engine_options: Mapping[str, Any]) -> AsyncEngine:
    """The handler's engine; ``engine_options`` override the defaults described above."""
    options: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": _json_dumps}
    if url.get_backend_name() == "postgresql":
        options["connect_args"] = {"timeout": timeout}
    options.update(engine_options)
    return create_async_engine(url, **options)


def returning_insert(table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
    """``INSERT INTO table ... RETURNING <primary key>`` (any filled column without one)."""
    returned = next(iter(table.primary_key.columns), table.c[columns[0]])
    return table.insert().returning(returned)


async def insert_rows(
    engine: AsyncEngine,
    table: sa.Table,
    insert: sa.Insert,
    rows: list[dict[str, Any]],
    page_size: int,
) -> None:
    """Insert ``rows`` in one transaction, one multi-row statement per ``page_size`` rows."""
    async with engine.begin() as conn:
        if engine.dialect.use_insertmanyvalues:
            options = {"insertmanyvalues_page_size": page_size}
            await conn.execute(insert, rows, execution_options=options)
        else:
            for start in range(0, len(rows), page_size):
                await conn.execute(table.insert().values(rows[start : start + page_size]))


async def ensure_table(engine: AsyncEngine, table: sa.Table) -> None:
    """Create ``table`` and its indexes unless they exist (see the module docstring)."""
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: table.create(sync, checkfirst=True))
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        async with engine.connect() as conn:  # a fresh transaction: the failed one is aborted
            exists = await conn.run_sync(
                lambda sync: sa.inspect(sync).has_table(table.name, schema=table.schema)
            )
        if not exists:
            raise


def refused_content(exc: Exception) -> bool:
    """Whether the database refused the rows themselves (retrying would fail again) rather
    than being unreachable, slow or missing the table (which may pass)."""
    if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
        return not exc.connection_invalidated
    # a statement that could not even be built or bound: a value no driver accepts
    return isinstance(exc, sa.exc.StatementError) and not isinstance(exc, sa.exc.DBAPIError)


def describe_error(exc: BaseException, url: URL, timeout: float) -> str:
    """One line naming the cause, the password scrubbed. For a driver error, the driver's own
    message: SQLAlchemy's adds the statement and its parameters, which are log content."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer within {timeout:g}s"
    cause: BaseException = exc
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        cause = exc.orig
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else ""
    return scrub(f"{type(cause).__name__}: {first}"[:300], url)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
