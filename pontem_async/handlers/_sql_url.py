"""Database URLs for the SQL handler and ``pontem-async incidents``: parsed, made async, masked.

- ``postgresql://`` / ``postgres://`` mean ``postgresql+asyncpg://`` and ``sqlite://`` means
  ``sqlite+aiosqlite://``: the handler runs on SQLAlchemy's asyncio engine, so a URL copied from
  a synchronous tool still works.
- A password never leaves this module in clear: :func:`masked` renders a URL with ``***`` in its
  place, and :func:`scrub` removes it (and any URL password) from an error message.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from pontem_async._redact import REDACTED, redact_text

__all__ = ["DEFAULT_URL", "masked", "parse_url", "scrub", "sqlite_path"]

DEFAULT_URL = "sqlite+aiosqlite:///incidents.db"
"""The embedded default: a SQLite file in the working directory, no server needed."""

_ASYNC_DRIVERS = {"postgresql": "asyncpg", "postgres": "asyncpg", "sqlite": "aiosqlite"}
_EXAMPLES = "sqlite+aiosqlite:///incidents.db or postgresql+asyncpg://user:pass@host/db"


def parse_url(url: str | URL, *, what: str = "url", password: str | None = None) -> URL:
    """``url`` as a SQLAlchemy :class:`URL` with an asyncio driver, its dialect importable.

    Raises:
        ValueError, TypeError: ``"<what>: ..."`` naming the problem, the password masked.
    """
    if isinstance(url, URL):
        parsed = url
    elif isinstance(url, str):
        if not url.strip():
            raise ValueError(f"{what}: expected a database URL such as {_EXAMPLES}, got ''")
        try:
            parsed = make_url(url.strip())
        except sa.exc.ArgumentError:
            raise ValueError(
                f"{what}: not a database URL: {redact_text(url)!r}; expected e.g. {_EXAMPLES}"
            ) from None
    else:
        raise TypeError(f"{what}: expected a database URL string, got {type(url).__name__}")
    if "+" not in parsed.drivername and parsed.drivername in _ASYNC_DRIVERS:
        backend = "postgresql" if parsed.drivername == "postgres" else parsed.drivername
        parsed = parsed.set(drivername=f"{backend}+{_ASYNC_DRIVERS[parsed.drivername]}")
    if password is not None:
        parsed = parsed.set(password=password)
    try:
        dialect = parsed.get_dialect()
    except Exception as exc:  # NoSuchModuleError, or the driver package is not installed
        raise ValueError(
            f"{what}: cannot use {masked(parsed)!r}: {scrub(str(exc), parsed)}; "
            f"install the driver (pip install 'pontem-async[sql]' brings asyncpg and aiosqlite)"
        ) from None
    if not getattr(dialect, "is_async", False):
        raise ValueError(
            f"{what}: {parsed.drivername!r} is not an asyncio driver; use e.g. {_EXAMPLES}"
        )
    return parsed


def masked(url: URL) -> str:
    """``url`` as text with its password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def scrub(message: str, url: URL | None = None) -> str:
    """``message`` without ``url``'s password (in any spelling) nor any other URL password."""
    if url is not None and url.password:
        secret = str(url.password)
        if len(secret) >= 3:  # a one-letter password would mask every such letter
            message = message.replace(secret, REDACTED)
        message = message.replace(url.render_as_string(hide_password=False), masked(url))
    return redact_text(message)


def sqlite_path(url: URL) -> str | None:
    """The file of a SQLite URL (absolute), or None for other databases and ``:memory:``."""
    if not url.drivername.startswith("sqlite"):
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)
