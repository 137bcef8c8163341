"""The "top recurring incidents" query: error rows grouped by fingerprint, most frequent first.

As SQL (the ``since``/``service`` conditions only when given)::

    WITH grouped AS (
        SELECT fingerprint, count(*) AS count, min(created_at) AS first_seen,
               max(created_at) AS last_seen, max(id) AS latest_id
        FROM error_logs
        WHERE fingerprint IS NOT NULL AND created_at >= :since AND service = :service
        GROUP BY fingerprint
    )
    SELECT grouped.*, e.message, e.service, e.level, e.route
    FROM grouped JOIN error_logs AS e ON e.id = grouped.latest_id
    ORDER BY count DESC, last_seen DESC, fingerprint
    LIMIT :limit

The join picks each group's *latest* row as its example, in one pass over the group's index.
A table of your own without an ``id`` column gets aggregates instead (``max(message)``...).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pontem_async.handlers._sql_schema import error_logs_table
from pontem_async.handlers._sql_url import parse_url

__all__ = ["Incident", "incidents_query", "top_incidents"]

_UTC = datetime.timezone.utc
_EXAMPLE_COLUMNS = ("message", "service", "level", "route")


@dataclass(frozen=True)
class Incident:
    """One fingerprint's group of error rows.

    Attributes:
        fingerprint: the 40-hex fingerprint shared by the rows.
        count: rows in the group (within the time window).
        first_seen, last_seen: timestamps (UTC) of its oldest and newest row.
        message: the newest row's message (an example).
        service, level, route: the newest row's values.
    """

    fingerprint: str
    count: int
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    message: str | None
    service: str | None
    level: str | None
    route: str | None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO 8601 UTC."""
        return {
            "fingerprint": self.fingerprint,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "service": self.service,
            "level": self.level,
            "route": self.route,
            "message": self.message,
        }


def incidents_query(
    table: sa.Table,
    *,
    since: datetime.datetime | None = None,
    service: str | None = None,
    limit: int = 20,
) -> sa.Select[Any]:
    """The query of the module docstring, on ``table`` (``since`` must be timezone-aware)."""
    c = table.c
    conditions: list[sa.ColumnElement[bool]] = [c.fingerprint.is_not(None)]
    if since is not None:
        conditions.append(c.created_at >= since)
    if service is not None:
        conditions.append(c.service == service)
    count = sa.func.count().label("count")
    first_seen = sa.func.min(c.created_at).label("first_seen")
    last_seen = sa.func.max(c.created_at).label("last_seen")
    if "id" not in c:
        examples = [sa.func.max(c[name]).label(name) for name in _EXAMPLE_COLUMNS if name in c]
        grouped = sa.select(c.fingerprint, count, first_seen, last_seen, *examples)
        query = grouped.where(*conditions).group_by(c.fingerprint)
        return query.order_by(count.desc(), last_seen.desc(), c.fingerprint).limit(limit)
    groups = (
        sa.select(c.fingerprint, count, first_seen, last_seen, sa.func.max(c.id).label("latest"))
        .where(*conditions)
        .group_by(c.fingerprint)
        .cte("grouped")
    )
    latest = table.alias("latest")
    return (
        sa.select(
            groups.c.fingerprint,
            groups.c.count,
            groups.c.first_seen,
            groups.c.last_seen,
            *(latest.c[name] for name in _EXAMPLE_COLUMNS if name in latest.c),
        )
        .join_from(groups, latest, latest.c.id == groups.c.latest)
        .order_by(groups.c.count.desc(), groups.c.last_seen.desc(), groups.c.fingerprint)
        .limit(limit)
    )


async def top_incidents(
    target: str | URL | AsyncEngine,
    *,
    since: datetime.datetime | datetime.timedelta | None = datetime.timedelta(hours=24),
    service: str | None = None,
    limit: int = 20,
    table: str | sa.Table = "error_logs",
) -> list[Incident]:
    """The ``limit`` most frequent fingerprints of the error rows in ``table``.

    Args:
        target: a database URL (as for ``SQLHandler``) or an ``AsyncEngine`` you own.
        since: only rows at or after this time; a ``timedelta`` counts back from now; None for
            all rows.
        service: only rows of this service.
        limit: most groups returned (a positive integer).
        table: the table's name, or your ``sqlalchemy.Table``.

    Raises:
        ValueError, TypeError: an argument is wrong (the message starts with its name).
        sqlalchemy.exc.SQLAlchemyError: the database could not be queried (the table is
            missing, the server is down...).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit: expected a positive integer, got {limit!r}")
    if isinstance(since, datetime.timedelta):
        since = datetime.datetime.now(_UTC) - since
    elif isinstance(since, datetime.datetime):
        since = since.astimezone(_UTC) if since.tzinfo else since.replace(tzinfo=_UTC)
    elif since is not None:
        raise TypeError(f"since: expected a datetime or timedelta, got {type(since).__name__}")
    if isinstance(table, str):
        table = error_logs_table(table)
    elif not isinstance(table, sa.Table):
        raise TypeError(f"table: expected a name or a sqlalchemy.Table, got {table!r}")
    query = incidents_query(table, since=since, service=service, limit=limit)
    if isinstance(target, AsyncEngine):
        return await _run(target, query)
    engine = create_async_engine(parse_url(target))
    try:
        return await _run(engine, query)
    finally:
        await engine.dispose()


async def _run(engine: AsyncEngine, query: sa.Select[Any]) -> list[Incident]:
    async with engine.connect() as conn:
        result = await conn.execute(query)
        return [_incident(row._mapping) for row in result]


def _incident(row: Mapping[str, Any]) -> Incident:
    return Incident(
        fingerprint=row["fingerprint"],
        count=int(row["count"]),
        first_seen=_utc(row["first_seen"]),
        last_seen=_utc(row["last_seen"]),
        message=row.get("message"),
        service=row.get("service"),
        level=row.get("level"),
        route=row.get("route"),
    )


def _utc(value: Any) -> datetime.datetime:
    """SQLite gives naive datetimes (stored as UTC text), PostgreSQL aware ones."""
    if isinstance(value, str):  # an aggregate SQLite returned untyped
        value = datetime.datetime.fromisoformat(value)
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"expected a timestamp, got {value!r}")
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
