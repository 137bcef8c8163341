"""SQLHandler on SQLite (the embedded default): rows from real errors, buffering, secrets.

PostgreSQL-specific behaviour (JSONB, a server restart) is in ``test_sql_postgres.py``; the
``incidents`` command in ``test_incidents_cli.py``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sql_helpers import fetch_rows, run_workers

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async.dictconfig import dict_config
from pontem_async.fingerprint import exception_fingerprint, format_stacktrace
from pontem_async.handlers import SQLHandler
from pontem_async.handlers._sql_rows import log_fingerprint, to_row
from pontem_async.handlers.sql import top_incidents
from pontem_async.records import LogRecord
from pontem_async.testing import MemoryHandler

UTC = datetime.timezone.utc
RESOURCE = {
    "deployment.environment": "staging",
    "vcs.ref.head.revision": "9fceb02d0ae598e95dc970b74767f19372d61af8",
}


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def as_utc(ns: int) -> datetime.datetime:
    return datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(microseconds=ns // 1000)


@asynccontextmanager
async def telemetry_with(*handlers: Any, **options: Any) -> AsyncIterator[Telemetry]:
    telemetry = Telemetry(
        "checkout",
        service_version="2.3.1",
        resource=RESOURCE,
        handlers=list(handlers),
        install_signal_handlers=False,
        **{"flush_interval": 0.01, **options},
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=10)


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``condition()`` holds (bounded: a broken retry fails the test, never hangs)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still false after {seconds}s")


def charge_card(order: int) -> None:
    raise ValueError(f"card declined for order {order}")


# ---------------------------------------------------------------------------- rows and columns


@pytest.mark.asyncio
async def test_an_exception_in_plain_code_becomes_one_complete_row(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "incidents.db")
    memory = MemoryHandler(name="memory")
    async with telemetry_with(SQLHandler(url, name="sql"), memory) as telemetry:
        log = telemetry.get_logger("billing").bind(session_id="s-77", customer="acme")
        try:
            charge_card(1234)
        except ValueError as exc:
            raised = exc
            log.exception("payment failed", attempt=2)
        assert await telemetry.flush(5)
    [record] = memory.logs
    [row] = await fetch_rows(url)
    assert row == {
        "id": 1,
        "created_at": as_utc(record.timestamp).replace(tzinfo=None),  # SQLite: naive UTC
        "level": "ERROR",
        "message": "payment failed",
        "message_template": "payment failed",
        "stack_trace": format_stacktrace(raised),
        "fingerprint": exception_fingerprint(raised, "checkout"),
        "service": "checkout",
        "environment": "staging",
        "release_version": "2.3.1",
        "build_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "route": None,
        "function_name": "charge_card",  # the innermost frame: where it was raised
        "http_method": None,
        "http_status": None,
        "latency_ms": None,
        "request_id": None,
        "session_id": "s-77",
        "tags": {
            "customer": "acme",
            "attempt": 2,
            "exception.type": "ValueError",
            "exception.message": "card declined for order 1234",
            "logger": "billing",
        },
    }


@contextmanager
def no_proxy_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.lower().endswith("_proxy")}
    try:
        yield
    finally:
        os.environ.update(saved)


@pytest.mark.asyncio
async def test_errors_in_an_aiohttp_handler_fill_the_request_columns(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "incidents.db")
    async with telemetry_with(SQLHandler(url, name="sql")) as telemetry:
        log = telemetry.get_logger("web")

        async def get_order(request: web.Request) -> web.Response:
            started = time.perf_counter()
            attributes = {
                "request_id": request.headers["X-Request-Id"],
                "http.route": "/orders/{id}",
                "http.request.method": request.method,
            }
            with pa.bind_context(**attributes):
                try:
                    {"1": "ok"}[request.match_info["id"]]
                except KeyError:
                    latency = (time.perf_counter() - started) * 1000
                    log.exception(
                        "order lookup failed",
                        **{"http.response.status_code": 404, "latency_ms": latency},
                        tenant="t1",
                    )
                    return web.Response(status=404)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/orders/{id}", get_order)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            with no_proxy_env():
                async with aiohttp.ClientSession() as session:
                    for n, order in enumerate(["1", "7", "8"]):
                        headers = {"X-Request-Id": f"req-{n}"}
                        async with session.get(
                            f"http://127.0.0.1:{port}/orders/{order}", headers=headers
                        ) as response:
                            assert response.status == (200 if order == "1" else 404)
        finally:
            await runner.cleanup()
        assert await telemetry.flush(5)
    rows = await fetch_rows(url)
    assert [row["request_id"] for row in rows] == ["req-1", "req-2"]
    for row in rows:
        assert row["route"] == "/orders/{id}"
        assert row["http_method"] == "GET"
        assert row["http_status"] == 404
        assert isinstance(row["latency_ms"], float)
        assert row["latency_ms"] >= 0
        assert row["function_name"] == "get_order"
        assert row["stack_trace"].startswith("Traceback (most recent call last):")
        last_line = row["stack_trace"].rstrip().splitlines()[-1]
        assert last_line == f"KeyError: {row['tags']['exception.message']}"
        assert row["tags"] == {
            "tenant": "t1",
            "exception.type": "KeyError",
            "exception.message": row["tags"]["exception.message"],
            "logger": "web",
        }
    assert {row["tags"]["exception.message"] for row in rows} == {"'7'", "'8'"}
    # '7' and '8' are masked the same way ("<n>"): one incident for both requests
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"]
    [incident] = await top_incidents(url, since=None)
    assert (incident.count, incident.route, incident.service) == (2, "/orders/{id}", "checkout")


@pytest.mark.asyncio
async def test_plain_attribute_names_fill_the_columns_too(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "incidents.db")
    async with telemetry_with(SQLHandler(url, name="sql")) as telemetry:
        telemetry.logger.error(
            "upstream timed out after 3000 ms",
            route="/pay",
            method="POST",
            status="504",
            function_name="pay",
            request_id=42,
            build_sha="abc123",
            duration_ms=3000,
        )
        assert await telemetry.flush(5)
    [row] = await fetch_rows(url)
    picked = {k: row[k] for k in ("route", "http_method", "http_status", "function_name")}
    assert picked == {"route": "/pay", "http_method": "POST", "http_status": 504,
                      "function_name": "pay"}  # fmt: skip
    assert (row["request_id"], row["latency_ms"], row["stack_trace"]) == ("42", 3000.0, None)
    # the resource's build sha wins over an attribute of the same meaning, which stays a tag
    assert row["build_sha"] == RESOURCE["vcs.ref.head.revision"]
    assert row["tags"] == {"build_sha": "abc123"}  # the root logger has no name to add
    assert row["message_template"] == "upstream timed out after <n> ms"
    assert row["fingerprint"] == log_fingerprint("", "upstream timed out after <n> ms", "checkout")


@pytest.mark.asyncio
async def test_only_error_and_worse_is_written_by_default(tmp_path: Path) -> None:
    default_url = sqlite_url(tmp_path / "default.db")
    warn_url = sqlite_url(tmp_path / "warn.db")
    handlers = (SQLHandler(default_url, name="errors"), SQLHandler(warn_url, level="warn"))
    async with telemetry_with(*handlers) as telemetry:
        for level in ("trace", "debug", "info", "warn", "error", "fatal"):
            getattr(telemetry.logger, level)(f"at {level}")
        assert await telemetry.flush(5)
    assert [(r["level"], r["message"]) for r in await fetch_rows(default_url)] == [
        ("ERROR", "at error"),
        ("FATAL", "at fatal"),
    ]
    assert [r["message"] for r in await fetch_rows(warn_url)] == ["at warn", "at error", "at fatal"]


@pytest.mark.asyncio
async def test_a_user_supplied_table_gets_the_columns_it_shares(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "custom.db")
    table = sa.Table(
        "app_errors",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(40)),
        sa.Column("service", sa.String(64)),
        sa.Column("team", sa.String(32), server_default="payments"),
    )
    async with telemetry_with(SQLHandler(url, table=table, name="sql")) as telemetry:
        try:
            charge_card(5)
        except ValueError as exc:
            telemetry.logger.exception("payment failed", route="/pay")
            fingerprint = exception_fingerprint(exc, "checkout")
        assert await telemetry.flush(5)
    rows = await fetch_rows(url, table)
    assert [{k: v for k, v in row.items() if k != "created_at"} for row in rows] == [
        {
            "id": 1,
            "message": "payment failed",
            "fingerprint": fingerprint,
            "service": "checkout",
            "team": "payments",
        }
    ]
    [incident] = await top_incidents(url, since=None, table=table)
    assert (incident.count, incident.message, incident.route) == (1, "payment failed", None)


@pytest.mark.asyncio
async def test_sqlite_in_the_working_directory_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    handler = SQLHandler()
    assert handler.describe()["url"] == "sqlite+aiosqlite:///incidents.db"
    async with telemetry_with(handler) as telemetry:
        telemetry.logger.error("disk full")
        assert await telemetry.flush(5)
    assert (tmp_path / "incidents.db").exists()
    assert [r["message"] for r in await fetch_rows(sqlite_url(tmp_path / "incidents.db"))] == [
        "disk full"
    ]


@pytest.mark.parametrize("insertmanyvalues", [True, False], ids=["cached", "compiled"])
@pytest.mark.asyncio
async def test_each_batch_is_one_multi_row_insert(tmp_path: Path, insertmanyvalues: bool) -> None:
    handler = SQLHandler(sqlite_url(tmp_path / "x.db"), level="trace")
    await handler.open()
    assert handler._engine is not None
    # False: the path taken on a dialect without SQLAlchemy's "insertmanyvalues"
    handler._engine.dialect.use_insertmanyvalues = insertmanyvalues
    statements: list[str] = []

    @sa.event.listens_for(handler._engine.sync_engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        if statement.startswith("INSERT"):
            statements.append(statement)

    now = time.time_ns()
    batch = [LogRecord(now + i, 17, f"e{i}", {"i": i}) for i in range(3000)]
    await handler.emit(batch[:300])
    await handler.emit(batch[:7])
    await handler.emit(batch)  # past the drivers' bind-parameter limit: split
    await handler.close()
    # one statement per batch, holding every row of it: INSERT ... VALUES (...), (...), ...
    per_statement = handler._rows_per_insert
    assert [s.count("), (") + 1 for s in statements] == [
        300, 7, per_statement, 3000 - per_statement
    ]  # fmt: skip
    rows = await fetch_rows(sqlite_url(tmp_path / "x.db"))
    assert [r["message"] for r in rows] == [f"e{i}" for i in [*range(300), *range(7), *range(3000)]]


# ---------------------------------------------------------------------------- the row mapping

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.text(),
    attributes=st.dictionaries(st.text(max_size=30), json_values | st.sampled_from([object()])),
)
def test_any_record_maps_to_a_row_every_database_accepts(
    body: str, attributes: dict[str, Any]
) -> None:
    row = to_row(LogRecord(time.time_ns(), 17, body, attributes, "x", {"service.name": "s"}))
    # strict JSON (no NaN/Infinity), no NUL anywhere (PostgreSQL refuses it in text and JSONB)
    json.dumps(row["tags"], allow_nan=False)
    texts = [v for v in row.values() if isinstance(v, str)]
    assert not any("\x00" in s for s in [*texts, *strings_in(row["tags"])])
    assert len(row["fingerprint"]) == 40
    assert row["message"] == body.replace("\x00", "\ufffd")[: len(row["message"])]
    # every attribute is somewhere: a column took it, or it is a tag
    assert set(row["tags"]) >= {
        k.replace("\x00", "\ufffd") for k in attributes if k not in TAKEN_BY_COLUMNS
    }


TAKEN_BY_COLUMNS = {
    "exception.stacktrace", "code.stacktrace", "exception.fingerprint", "message_template",
    "http.route", "route", "code.function.name", "code.function", "function_name",
    "http.request.method", "http.method", "http_method", "method", "http.response.status_code",
    "http.status_code", "http_status", "status_code", "status", "latency_ms", "duration_ms",
    "request_id", "http.request.id", "request.id", "session_id", "session.id",
    "deployment.environment.name", "deployment.environment", "service.version",
    "vcs.ref.head.revision", "vcs.revision", "build.sha", "build_sha", "service.name",
}  # fmt: skip


def test_awkward_values_are_kept_readable() -> None:
    attributes = {
        "ratio": math.nan,
        "blob": b"\x00\x01",
        "when": datetime.datetime(2025, 1, 2, 3, 4, 5),
        "nested": {"a": [1, math.inf, "x\x00y"]},
        "status": "not-a-number",
    }
    row = to_row(LogRecord(time.time_ns(), 17, "nul\x00here", attributes))
    assert row["message"] == "nul\ufffdhere"
    assert row["http_status"] is None  # not an integer: it stays a tag
    assert row["tags"] == {
        "ratio": None,
        "blob": "b'\\x00\\x01'",
        "when": "2025-01-02T03:04:05",
        "nested": {"a": [1, None, "x\ufffdy"]},
        "status": "not-a-number",
    }


# ---------------------------------------------------------------------------- unreachable database


@pytest.mark.asyncio
async def test_a_database_that_cannot_be_opened_buffers_then_drops_the_oldest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "incidents.db"
    path.mkdir()  # a directory where the database file should be: SQLite cannot open it
    handler = SQLHandler(sqlite_url(path), name="sql", buffer_size=10, retry_interval=0.05)
    async with telemetry_with(handler) as telemetry:
        for i in range(25):
            telemetry.logger.error(f"error {i}")
            await asyncio.sleep(0)  # several batches
        assert not await telemetry.flush(5)  # reported, never raised
        stats = telemetry.stats()["sql"]
        assert stats["dropped"] == {"retry_buffer_full": 15}
        assert stats["handler"]["buffered"] == 10
        assert "OperationalError" in stats["handler"]["last_error"]
        path.rmdir()  # the database comes back
        assert await telemetry.flush(5)
        assert telemetry.stats()["sql"]["handler"]["buffered"] == 0
    assert [r["message"] for r in await fetch_rows(sqlite_url(path))] == [
        f"error {i}" for i in range(15, 25)
    ]


@pytest.mark.asyncio
async def test_the_retry_task_writes_the_backlog_without_new_records(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    path.mkdir()
    handler = SQLHandler(sqlite_url(path), name="sql", retry_interval=0.02, max_retry_interval=0.1)
    async with telemetry_with(handler) as telemetry:
        telemetry.logger.error("while down")
        await eventually(lambda: handler.stats()["last_error"] is not None)
        path.rmdir()
        # nothing logged, no flush: the retry task writes the backlog on its own
        await eventually(lambda: handler.stats()["buffered"] == 0)
        assert handler.stats()["written"] == 1
    assert [r["message"] for r in await fetch_rows(sqlite_url(path))] == ["while down"]


@pytest.mark.asyncio
async def test_rows_unwritten_at_close_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    path.mkdir()
    handler = SQLHandler(sqlite_url(path), name="sql", retry_interval=30)
    async with telemetry_with(handler) as telemetry:
        for i in range(3):
            telemetry.logger.error(f"lost {i}")
        await telemetry.flush(5)
    assert telemetry.stats()["sql"]["dropped"] == {"unwritten_at_close": 3}
    assert handler.stats()["buffered"] == 0


@pytest.mark.asyncio
async def test_a_database_that_never_answers_does_not_hold_the_pipeline_up() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers, until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"postgresql://app@127.0.0.1:{port}/telemetry"
    handler = SQLHandler(url, name="sql", timeout=0.3, retry_interval=30)
    try:
        async with telemetry_with(handler) as telemetry:
            telemetry.logger.error("first")
            await eventually(lambda: handler.stats()["last_error"] is not None)
            assert handler.stats()["last_error"] == "no answer within 0.3s"
            for i in range(100):  # backing off: these are only buffered
                telemetry.logger.error(f"more {i}")
            await eventually(lambda: handler.stats()["buffered"] == 101)
        # the last attempt at close times out too: counted, not lost silently
        assert telemetry.stats()["sql"]["dropped"] == {"unwritten_at_close": 101}
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_rows_the_database_refuses_are_counted_not_retried(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "strict.db")
    table = sa.Table(
        "strict",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("owner", sa.String, nullable=False),  # nothing fills it: every insert fails
    )
    handler = SQLHandler(url, table=table, name="sql")
    async with telemetry_with(handler) as telemetry:
        for i in range(3):
            telemetry.logger.error(f"refused {i}")
        assert not await telemetry.flush(5)  # rows were lost: the flush says so, once
        assert await telemetry.flush(5)  # nothing waits: refused rows are not retried
        stats = telemetry.stats()["sql"]
    assert stats["dropped"] == {"rejected": 3}
    assert stats["handler"]["buffered"] == 0
    assert await fetch_rows(url, table) == []


# ---------------------------------------------------------------------------- two processes


@pytest.mark.asyncio
async def test_the_same_error_in_two_processes_is_one_incident(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared.db")
    outputs = await asyncio.to_thread(run_workers, url, "error_logs", [101, 202])
    assert [o["stats"]["dropped"] for o in outputs] == [{}, {}]
    rows = await fetch_rows(url)
    assert sorted(r["tags"]["order"] for r in rows) == [101, 202]
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"]
    assert rows[0]["function_name"] == "charge"
    [incident] = await top_incidents(url, since=None)
    assert (incident.count, incident.service, incident.message) == (2, "shop", "charge failed")


# ---------------------------------------------------------------------------- config and secrets


def test_dict_config_loads_the_handler_by_either_class_path(tmp_path: Path) -> None:
    for class_path in ("pontem_async.handlers.SQLHandler", "pontem_async.handlers.sql.SQLHandler"):
        telemetry = dict_config(
            {
                "version": 1,
                "service": {"name": "cfg"},
                "handlers": {
                    "db": {
                        "class": class_path,
                        "url": sqlite_url(tmp_path / "cfg.db"),
                        "table": "errs",
                        "buffer_size": 50,
                    }
                },
            },
            install_signal_handlers=False,
        )
        try:
            [lane] = telemetry._pipeline.lanes
            handler = lane.handler
            assert isinstance(handler, SQLHandler)
            assert (handler.name, handler.table.name, handler.buffer_size) == ("db", "errs", 50)
        finally:
            telemetry.shutdown_sync(5)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("buffer_size", 0, "handlers.db.buffer_size: expected a positive integer, got 0"),
        ("timeout", -1, "handlers.db.timeout: expected a positive number of seconds, got -1"),
        ("table", "", "handlers.db.table: expected a table name or a sqlalchemy.Table, got ''"),
        ("url", "mysql+nodriver://u:pw1234@h/db", "handlers.db.url: cannot use"),
    ],
)
def test_bad_options_name_their_key_path(option: str, value: Any, message: str) -> None:
    config = {
        "version": 1,
        "service": {"name": "cfg"},
        "handlers": {"db": {"class": "pontem_async.handlers.SQLHandler", option: value}},
    }
    with pytest.raises(pa.ConfigError) as caught:
        dict_config(config, install_signal_handlers=False)
    assert str(caught.value).startswith(message)
    assert "pw1234" not in str(caught.value)


@pytest.mark.asyncio
async def test_the_password_never_shows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Pa55"
    url = f"postgresql+asyncpg://app:{secret}@127.0.0.1:1/telemetry"  # port 1: refused
    handler = SQLHandler(url, name="sql", retry_interval=30, timeout=2)
    shown = [repr(handler), json.dumps(handler.describe())]
    with caplog.at_level(logging.WARNING, logger="pontem_async"):
        async with telemetry_with(handler) as telemetry:
            telemetry.logger.error("boom")
            assert not await telemetry.flush(5)
            with pytest.raises(ConnectionError) as caught:
                await handler.flush()
            shown += [str(caught.value), json.dumps(telemetry.stats())]
    shown += [r.getMessage() for r in caplog.records]
    assert any("cannot write to postgresql+asyncpg://app:***@127.0.0.1:1/telemetry" in s
               for s in shown)  # fmt: skip
    assert not [s for s in shown if secret in s]
    # a password given on its own is a declared secret, and is used
    separate = SQLHandler("postgresql://app@127.0.0.1:1/telemetry", password=secret)
    assert separate.url.password == secret
    assert secret not in repr(separate) + json.dumps(separate.describe())


def test_check_config_masks_the_url_password_and_the_password_option(tmp_path: Path) -> None:
    config = tmp_path / "telemetry.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "service": {"name": "cfg"},
                "handlers": {
                    "in_url": {
                        "class": "pontem_async.handlers.SQLHandler",
                        "url": "postgresql+asyncpg://app:url-secret-1@db.internal/telemetry",
                    },
                    "separate": {
                        "class": "pontem_async.handlers.sql.SQLHandler",
                        "url": "postgresql+asyncpg://app@db.internal/telemetry",
                        "password": "option-secret-2",
                    },
                },
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pontem_async", "check-config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "postgresql+asyncpg://app:***@db.internal/telemetry" in output
    assert "url-secret-1" not in output
    assert "option-secret-2" not in output


def test_without_sqlalchemy_the_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "import pontem_async.handlers as h\n"  # importing the package still works
        "try:\n    h.SQLHandler\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'pontem-async[sql]'" in result.stdout
