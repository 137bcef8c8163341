"""SQLHandler against a real PostgreSQL: types and indexes, two processes, a server restart.

Each test writes to its own uniquely named table, dropped afterwards, so tests (and other
users of the ``test`` database) never see each other's rows.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sql_helpers import fetch_rows, run_workers
from sqlalchemy.ext.asyncio import create_async_engine

from pontem_async import Telemetry
from pontem_async.fingerprint import exception_fingerprint
from pontem_async.handlers import SQLHandler
from pontem_async.handlers.sql import top_incidents

pytestmark = pytest.mark.db


@pytest_asyncio.fixture
async def pg_table(postgres_url: str) -> AsyncIterator[str]:
    """A fresh table name; the table is dropped after the test."""
    name = f"error_logs_{uuid.uuid4().hex[:12]}"
    yield name
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        await engine.dispose()


@asynccontextmanager
async def telemetry_with(*handlers: Any) -> AsyncIterator[Telemetry]:
    telemetry = Telemetry(
        "inventory",
        resource={"deployment.environment": "prod"},
        handlers=list(handlers),
        flush_interval=0.01,
        install_signal_handlers=False,
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=15)


async def scalar_rows(url: str, query: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(query), params)).all())
    finally:
        await engine.dispose()


def reserve(sku: str) -> None:
    raise LookupError(f"sku {sku} out of stock")


@pytest.mark.asyncio
async def test_rows_use_timestamptz_jsonb_and_the_five_indexes(
    postgres_url: str, pg_table: str
) -> None:
    handler = SQLHandler(postgres_url, table=pg_table, name="sql")
    async with telemetry_with(handler) as telemetry:
        log = telemetry.get_logger("stock").bind(request_id="r-9", tenant="t-3")
        try:
            reserve("A-100")
        except LookupError as exc:
            log.exception("reservation failed", **{"http.route": "/reserve"}, qty=2.5)
            fingerprint = exception_fingerprint(exc, "inventory")
        assert await telemetry.flush(10)
    [row] = await fetch_rows(postgres_url, pg_table)
    assert row["created_at"].tzinfo is not None
    picked = {k: row[k] for k in ("fingerprint", "service", "environment", "route", "request_id")}
    assert picked == {
        "fingerprint": fingerprint,
        "service": "inventory",
        "environment": "prod",
        "route": "/reserve",
        "request_id": "r-9",
    }
    assert row["function_name"] == "reserve"
    assert row["tags"] == {
        "tenant": "t-3",
        "qty": 2.5,
        "exception.type": "LookupError",
        "exception.message": "sku A-100 out of stock",
        "logger": "stock",
    }
    # JSONB: the tags are queryable as such
    assert await scalar_rows(
        postgres_url, f"SELECT tags->>'tenant' FROM \"{pg_table}\" WHERE tags @> '{{\"qty\": 2.5}}'"
    ) == [("t-3",)]
    types = await scalar_rows(
        postgres_url,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = :t AND column_name IN ('created_at', 'tags')",
        t=pg_table,
    )
    assert sorted(types) == [("created_at", "timestamp with time zone"), ("tags", "jsonb")]
    indexes = await scalar_rows(
        postgres_url, "SELECT indexname FROM pg_indexes WHERE tablename = :t", t=pg_table
    )
    assert sorted(name for (name,) in indexes) == sorted(
        [f"{pg_table}_pkey"]
        + [
            f"ix_{pg_table}_{c}"
            for c in ("created_at", "fingerprint", "service", "route", "request_id")
        ]
    )


@pytest.mark.asyncio
async def test_the_same_error_in_two_processes_is_one_incident(
    postgres_url: str, pg_table: str
) -> None:
    outputs = await asyncio.to_thread(run_workers, postgres_url, pg_table, [7, 8])
    assert [o["stats"]["dropped"] for o in outputs] == [{}, {}]
    rows = await fetch_rows(postgres_url, pg_table)
    assert sorted(r["tags"]["order"] for r in rows) == [7, 8]
    assert len({r["fingerprint"] for r in rows}) == 1
    [incident] = await top_incidents(postgres_url, table=pg_table)
    assert (incident.count, incident.service, incident.fingerprint) == (
        2,
        "shop",
        rows[0]["fingerprint"],
    )
    assert incident.first_seen <= incident.last_seen
    assert incident.last_seen <= datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------------------- a server restart


def pg_ctl(action: str) -> None:
    """Stop or start the local cluster (Debian's wrapper; root may run it)."""
    versions = sorted(os.listdir("/etc/postgresql"))
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def wait_until_answers(url: str, seconds: float = 30.0) -> None:
    engine = create_async_engine(url)
    try:
        for _ in range(int(seconds / 0.2)):
            try:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                return
            except (OSError, sa.exc.DBAPIError):
                await asyncio.sleep(0.2)
        raise AssertionError(f"PostgreSQL did not answer within {seconds}s")
    finally:
        await engine.dispose()


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"),
    reason="needs a Debian-managed local PostgreSQL cluster to stop and start",
)
async def test_a_restart_mid_stream_loses_nothing_within_the_buffer(
    postgres_url: str, pg_table: str
) -> None:
    handler = SQLHandler(
        postgres_url, table=pg_table, name="sql", retry_interval=0.1, max_retry_interval=0.5
    )
    async with telemetry_with(handler) as telemetry:
        log = telemetry.logger
        for seq in range(50):
            log.error("stock check failed", seq=seq)
        assert await telemetry.flush(10)
        try:
            await asyncio.to_thread(pg_ctl, "stop")
            for seq in range(50, 150):
                log.error("stock check failed", seq=seq)
                if seq % 10 == 0:
                    await asyncio.sleep(0.01)  # several batches while the server is away
            assert not await telemetry.flush(10)  # reported, not raised
            assert handler.stats()["buffered"] == 100
        finally:
            await asyncio.to_thread(pg_ctl, "start")
            await wait_until_answers(postgres_url)
        for seq in range(150, 200):
            log.error("stock check failed", seq=seq)
        assert await telemetry.flush(15)
        stats = telemetry.stats()["sql"]
    assert stats["dropped"] == {}
    assert stats["handler"]["written"] == 200
    rows = await fetch_rows(postgres_url, pg_table)
    assert sorted(r["tags"]["seq"] for r in rows) == list(range(200))
    [incident] = await top_incidents(postgres_url, table=pg_table)
    assert incident.count == 200
