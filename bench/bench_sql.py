"""How fast SQLHandler writes error rows, per batch size; run by hand, never by the test suite.

    bash bench/run.sh sql                       # installs the [sql] extra, runs everything
    python bench/bench_sql.py --quick           # in an environment that already has it
    python bench/bench_sql.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/test

For each database (PostgreSQL at ``--url`` when it answers, and a SQLite file) and each batch
size, it hands ``--n`` error records (real exceptions: stack trace, fingerprint, request
attributes) to ``SQLHandler.emit`` in batches of that size and reports rows per second, wall
clock from the first emit to the last commit. Row mapping is included (it runs on the consumer
task in production too). For comparison, the same rows are also written with one
``executemany`` per batch (``conn.execute(table.insert(), rows)``) instead of the handler's
single multi-row ``INSERT ... VALUES (...), (...)``. Each run writes to a fresh table, dropped
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from pontem_async.handlers._sql_rows import to_row
from pontem_async.handlers.sql import SQLHandler, error_logs_table
from pontem_async.log import exception_attributes
from pontem_async.records import LogRecord

BATCH_SIZES = (1, 16, 128, 512, 2048)


def make_records(n: int) -> list[LogRecord]:
    def lookup(order: int) -> None:
        raise KeyError(f"order {order} not found")

    try:
        lookup(1)
    except KeyError as exc:
        error = exception_attributes(exc, "bench")
    resource = {"service.name": "bench", "service.version": "1.0.0"}
    now = time.time_ns()
    return [
        LogRecord(
            now + i,
            17,
            "order lookup failed",
            {
                **error,
                "request_id": f"req-{i}",
                "http.route": "/orders/{id}",
                "http.request.method": "GET",
                "http.response.status_code": 500,
                "latency_ms": 12.5,
                "tenant": "t-1",
            },
            "bench",
            resource,
        )
        for i in range(n)
    ]


async def via_handler(url: str, records: Sequence[LogRecord], batch: int) -> float:
    table = f"bench_{uuid.uuid4().hex[:10]}"
    handler = SQLHandler(url, table=table, level="trace")
    await handler.open()
    await handler.emit(records[:1])  # creates the table outside the timing
    try:
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            await handler.emit(records[i : i + batch])
        await handler.flush()
        elapsed = time.perf_counter() - started
        assert handler.stats()["written"] == len(records) + 1, handler.stats()
        return len(records) / elapsed
    finally:
        await handler.close()
        await drop(url, table)


async def via_executemany(url: str, records: Sequence[LogRecord], batch: int) -> float:
    table = error_logs_table(f"bench_{uuid.uuid4().hex[:10]}")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            rows = [to_row(r) for r in records[i : i + batch]]
            async with engine.begin() as conn:
                await conn.execute(table.insert(), rows)
        return len(records) / (time.perf_counter() - started)
    finally:
        await engine.dispose()
        await drop(url, table.name)


async def drop(url: str, table: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    finally:
        await engine.dispose()


async def answers(url: str) -> bool:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--n", type=int, default=None, help="rows per run (default 20000)")
    parser.add_argument("--quick", action="store_true", help="2000 rows per run: a smoke run")
    args = parser.parse_args(argv)
    n = args.n or (2000 if args.quick else 20_000)
    records = make_records(n)
    print(f"# SQLHandler rows/s, {n} error rows per run; Python {platform.python_version()}, "
          f"SQLAlchemy {sa.__version__}")  # fmt: skip
    with TemporaryDirectory() as tmp:
        targets = {"sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}
        if await answers(args.url):
            targets = {"postgresql": args.url, **targets}
        else:
            print(f"# {args.url.split('@')[-1]} does not answer: PostgreSQL skipped")
        print(f"{'database':<11} {'batch':>6} {'multi-row INSERT':>17} {'executemany':>12}")
        for name, url in targets.items():
            for batch in BATCH_SIZES:
                records_for = records if batch > 1 else records[: max(n // 10, 100)]
                multi = await via_handler(url, records_for, batch)
                many = await via_executemany(url, records_for, batch)
                print(f"{name:<11} {batch:>6} {multi:>17,.0f} {many:>12,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
