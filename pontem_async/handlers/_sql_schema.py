"""The ``error_logs`` table: one row per log record, grouped later by ``fingerprint``.

Why these types:

- ``created_at`` is a timezone-aware timestamp (``timestamptz`` on PostgreSQL); SQLite has no
  such type and stores UTC text, which compares correctly as long as every value is UTC, so
  every value written here is.
- ``tags`` is ``JSONB`` on PostgreSQL (indexable with GIN, queryable with ``->>``) and ``JSON``
  elsewhere.
- Text columns have no declared length: PostgreSQL's ``varchar`` without a length costs nothing
  more than a bounded one, and SQLite ignores lengths. The row mapping bounds the values instead
  (:data:`SHORT_TEXT` characters for the indexed columns, whose b-tree entries must stay small,
  :data:`LONG_TEXT` for messages and stack traces).
- ``id`` is a surrogate primary key: it gives rows an insertion order, lets the incidents query
  pick each group's latest example with one join, and lets people delete single rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "COLUMNS",
    "INDEXED",
    "LONG_TEXT",
    "SHORT_TEXT",
    "error_logs_table",
]

SHORT_TEXT = 512
"""Most characters kept in an indexed or identifier-like text column (route, request id...)."""
LONG_TEXT = 65_536
"""Most characters kept in ``message``, ``message_template`` and ``stack_trace``."""

COLUMNS: tuple[str, ...] = (
    "created_at",
    "level",
    "message",
    "message_template",
    "stack_trace",
    "fingerprint",
    "service",
    "environment",
    "release_version",
    "build_sha",
    "route",
    "function_name",
    "http_method",
    "http_status",
    "latency_ms",
    "request_id",
    "session_id",
    "tags",
)
"""The columns a row fills, in table order (``id`` comes first and is generated)."""

INDEXED: tuple[str, ...] = ("created_at", "fingerprint", "service", "route", "request_id")
"""Columns with an index: the incidents query filters on time and service and groups by
fingerprint; route and request id are what people look an error up by."""

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY
_TAGS = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def error_logs_table(name: str = "error_logs", metadata: sa.MetaData | None = None) -> sa.Table:
    """The default table definition, named ``name``, in ``metadata`` (a new one if None).

    Index names start with the table name, so several such tables can live in one schema.
    """
    meta = metadata if metadata is not None else sa.MetaData()
    columns: list[sa.Column[object]] = [
        sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("message_template", sa.Text()),
        sa.Column("stack_trace", sa.Text()),
        sa.Column("fingerprint", sa.String()),
        sa.Column("service", sa.String()),
        sa.Column("environment", sa.String()),
        sa.Column("release_version", sa.String()),
        sa.Column("build_sha", sa.String()),
        sa.Column("route", sa.String()),
        sa.Column("function_name", sa.String()),
        sa.Column("http_method", sa.String()),
        sa.Column("http_status", sa.Integer()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("request_id", sa.String()),
        sa.Column("session_id", sa.String()),
        sa.Column("tags", _TAGS),
    ]
    indexes = [sa.Index(f"ix_{name}_{column}", column) for column in INDEXED]
    return sa.Table(name, meta, *columns, *indexes)
