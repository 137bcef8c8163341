"""``pontem-async incidents URL``: the top recurring errors of a seeded table, table and JSON."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from pontem_async._incidents import parse_since
from pontem_async.cli import main
from pontem_async.handlers import SQLHandler
from pontem_async.records import LogRecord

UTC = datetime.timezone.utc
BASE = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FP_PAY, FP_INDEX, FP_CACHE, FP_OLD = ("a1" * 20, "b2" * 20, "c3" * 20, "d4" * 20)


def ns(moment: datetime.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def error(moment: datetime.datetime, body: str, fingerprint: str, service: str) -> LogRecord:
    attributes = {"exception.fingerprint": fingerprint, "http.route": "/r"}
    return LogRecord(ns(moment), 17, body, attributes, "app", {"service.name": service})


async def seed(url: str, records: Sequence[LogRecord], table: str = "error_logs") -> None:
    """Write ``records`` through the handler itself, as a service would have."""
    async with SQLHandler(url, table=table) as handler:
        await handler.emit(records)
        await handler.flush()


def minutes(n: int) -> datetime.timedelta:
    return datetime.timedelta(minutes=n)


SEEDED = [
    *(error(BASE + minutes(i), f"payment declined for order {i}", FP_PAY, "checkout")
      for i in range(5)),
    *(error(BASE + minutes(i * 10), "search index unavailable", FP_INDEX, "search")
      for i in range(3)),
    error(BASE + minutes(30), "cache stampede on key " + "k" * 120, FP_CACHE, "checkout"),
    *(error(BASE - datetime.timedelta(days=10), "old error", FP_OLD, "checkout")
      for _ in range(9)),
]  # fmt: skip


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "120")  # the table fits the terminal's width
    url = f"sqlite+aiosqlite:///{tmp_path / 'incidents.db'}"
    asyncio.run(seed(url, SEEDED))
    return url


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["incidents", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_table_lists_the_most_frequent_fingerprints_first(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli(capsys, seeded, "--since", "2025-03-01T00:00:00")
    assert (status, err) == (0, "")
    assert out == (
        "COUNT  FIRST SEEN (UTC)     LAST SEEN (UTC)      SERVICE   FINGERPRINT   MESSAGE\n"
        "    5  2025-03-01 12:00:00  2025-03-01 12:04:00  checkout  a1a1a1a1a1a1  "
        "payment declined for order 4\n"
        "    3  2025-03-01 12:00:00  2025-03-01 12:20:00  search    b2b2b2b2b2b2  "
        "search index unavailable\n"
        "    1  2025-03-01 12:30:00  2025-03-01 12:30:00  checkout  c3c3c3c3c3c3  "
        "cache stampede on key " + "k" * (120 - 73 - 22 - 1) + "…\n"
    )
    assert max(len(line) for line in out.splitlines()) == 120


def test_json_output_has_full_fingerprints_and_iso_times(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(capsys, seeded, "--since", "all", "--json", "--limit", "2")
    assert status == 0
    assert json.loads(out) == [
        {
            "fingerprint": FP_OLD,
            "count": 9,
            "first_seen": "2025-02-19T12:00:00+00:00",
            "last_seen": "2025-02-19T12:00:00+00:00",
            "service": "checkout",
            "level": "ERROR",
            "route": "/r",
            "message": "old error",
        },
        {
            "fingerprint": FP_PAY,
            "count": 5,
            "first_seen": "2025-03-01T12:00:00+00:00",
            "last_seen": "2025-03-01T12:04:00+00:00",
            "service": "checkout",
            "level": "ERROR",
            "route": "/r",
            "message": "payment declined for order 4",
        },
    ]


def test_service_filter(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, seeded, "--since", "all", "--service", "search", "--json")
    assert status == 0
    assert [(i["fingerprint"], i["count"]) for i in json.loads(out)] == [(FP_INDEX, 3)]


def test_since_counts_back_from_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'recent.db'}"
    now = datetime.datetime.now(UTC)
    recent = [error(now - datetime.timedelta(hours=h), "boom", FP_PAY, "svc") for h in (1, 2)]
    older = [error(now - datetime.timedelta(days=3), "boom", FP_PAY, "svc")]
    asyncio.run(seed(url, [*older, *recent]))
    counts = {}
    for since in ("24h", "7d", "all"):
        status, out, _ = run_cli(capsys, url, "--since", since, "--json")
        assert status == 0
        counts[since] = [i["count"] for i in json.loads(out)]
    assert counts == {"24h": [2], "7d": [3], "all": [3]}
    status, out, _ = run_cli(capsys, url, "--since", "30m")
    assert (status, out) == (0, "no incidents in this window\n")


def test_a_missing_table_or_bad_url_is_reported_not_raised(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli(capsys, seeded, "--table", "nope")
    assert (status, out) == (1, "")
    assert err.startswith("pontem-async incidents: cannot query table 'nope' at sqlite+aiosqlite")
    assert "no such table: nope" in err
    status, _, err = run_cli(capsys, "not a url")
    assert status == 2
    assert "URL: not a database URL" in err
    with pytest.raises(SystemExit) as exited:
        main(["incidents", seeded, "--since", "yesterday"])
    assert exited.value.code == 2
    assert (
        "expected a duration (30m, 24h, 7d), an ISO 8601 time or 'all'" in capsys.readouterr().err
    )


def test_an_unreachable_server_is_reported_with_the_password_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run_cli(capsys, "postgresql://ops:hunter2-pw@127.0.0.1:1/telemetry")
    assert (status, out) == (1, "")
    assert "at postgresql+asyncpg://ops:***@127.0.0.1:1/telemetry: " in err
    assert "hunter2-pw" not in err


@given(days=st.integers(0, 30), hours=st.integers(0, 48), mins=st.integers(0, 90))
def test_durations_combine_their_units(days: int, hours: int, mins: int) -> None:
    text = f"{days}d{hours}h{mins}m"
    assert parse_since(text) == datetime.timedelta(days=days, hours=hours, minutes=mins)


# ---------------------------------------------------------------------------- PostgreSQL


@pytest_asyncio.fixture
async def pg_table(postgres_url: str) -> AsyncIterator[str]:
    name = f"incidents_{uuid.uuid4().hex[:12]}"
    yield name
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        await engine.dispose()


@pytest.mark.db
@pytest.mark.asyncio
async def test_the_command_reads_a_postgresql_table(postgres_url: str, pg_table: str) -> None:
    await seed(postgres_url, SEEDED, table=pg_table)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    args = ["incidents", postgres_url, "--table", pg_table, "--since", "2025-02-01", "--json"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pontem_async", *args],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )  # fmt: skip

    result = await asyncio.to_thread(run)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    assert [(i["fingerprint"], i["count"], i["message"]) for i in found] == [
        (FP_OLD, 9, "old error"),
        (FP_PAY, 5, "payment declined for order 4"),
        (FP_INDEX, 3, "search index unavailable"),
        (FP_CACHE, 1, "cache stampede on key " + "k" * 120),
    ]
    assert found[1]["first_seen"] == "2025-03-01T12:00:00+00:00"
