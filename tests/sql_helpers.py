"""Helpers of the SQL tests, and the worker process they start.

As a script, ``python tests/sql_helpers.py URL TABLE ORDER`` is one service process: it raises
``ValueError("order <ORDER> declined ...")`` in ``charge``, logs it with ``logger.exception``
through an SQLHandler, then prints the handler's stats as JSON. Two runs with different orders
are the same error in two processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import pontem_async as pa
from pontem_async.handlers import SQLHandler
from pontem_async.handlers.sql import error_logs_table


async def fetch_rows(url: str, table: str | sa.Table = "error_logs") -> list[dict[str, Any]]:
    """Every row, oldest first, typed through the default schema (tags as dicts)."""
    t = error_logs_table(table) if isinstance(table, str) else table
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.select(t).order_by(t.c.id))
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


def run_workers(url: str, table: str, orders: list[int]) -> list[dict[str, Any]]:
    """Start one worker process per order, all at once (they race to create the table); return
    what each printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, url, table, str(order)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for order in orders
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


def charge(order: int) -> None:
    raise ValueError(f"order {order} declined by the bank")


def main() -> int:
    url, table, order = sys.argv[1], sys.argv[2], int(sys.argv[3])
    telemetry = pa.init(
        "shop",
        handlers=[SQLHandler(url, table=table, name="sql")],
        install_signal_handlers=False,
    )
    try:
        charge(order)
    except ValueError:
        pa.logger.exception("charge failed", order=order)
    report = telemetry.shutdown_sync(20)
    print(json.dumps({"complete": report.complete, "stats": telemetry.stats()["sql"]}))
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
