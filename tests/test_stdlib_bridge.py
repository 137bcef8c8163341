"""The stdlib ``logging`` bridge: PontemHandler, PontemJSONFormatter, install/uninstall."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from types import TracebackType

import pytest

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async.handlers.stream import StreamHandler
from pontem_async.stdlib import (
    PontemHandler,
    PontemJSONFormatter,
    install_stdlib_bridge,
    uninstall_stdlib_bridge,
)
from pontem_async.testing import MemoryHandler, capture

LOGGER = "tests.stdlib.app"
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


@pytest.fixture
def tel() -> Telemetry:
    """A telemetry that is never started: tests read its records with ``capture(tel)``."""
    return Telemetry("test-svc", handlers=[], install_signal_handlers=False)


def _attach(handler: logging.Handler, name: str = LOGGER) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(1)
    logger.propagate = False
    return logger


def _detach(logger: logging.Logger, handler: logging.Handler) -> None:
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


@pytest.fixture
def app_logger(tel: Telemetry) -> Iterator[logging.Logger]:
    """A stdlib logger (all levels enabled, not propagating) with a PontemHandler for ``tel``."""
    handler = PontemHandler(tel)
    logger = _attach(handler)
    yield logger
    _detach(logger, handler)


@pytest.fixture
def root_level() -> Iterator[logging.Logger]:
    """The root logger at its stdlib default level (WARNING), restored afterwards."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.WARNING)
    yield root
    root.setLevel(saved)


def _bridges_of(tel: Telemetry) -> list[logging.Handler]:
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, PontemHandler) and h.telemetry is tel
    ]


def _stdlib_record(
    name: str = LOGGER,
    level: int = logging.INFO,
    msg: object = "hello",
    args: tuple[object, ...] | None = None,
    exc_info: ExcInfo | None = None,
    lineno: int = 42,
    **extra: object,
) -> logging.LogRecord:
    """A record as ``logging.getLogger(name).log(level, msg, *args, extra=extra)`` makes it."""
    record = logging.LogRecord(
        name, level, "/srv/app/views.py", lineno, msg, args, exc_info, "index"
    )
    record.__dict__.update(extra)
    return record


def _lookup_order(order_id: int) -> None:
    raise KeyError(f"order {order_id}")


@pytest.mark.parametrize(
    ("levelno", "severity", "text"),
    [
        (1, 1, "TRACE"),
        (5, 1, "TRACE"),
        (logging.DEBUG, 5, "DEBUG"),
        (15, 5, "DEBUG"),
        (logging.INFO, 9, "INFO"),
        (25, 9, "INFO"),
        (logging.WARNING, 13, "WARN"),
        (35, 13, "WARN"),
        (logging.ERROR, 17, "ERROR"),
        (45, 17, "ERROR"),
        (logging.CRITICAL, 21, "FATAL"),
        (60, 21, "FATAL"),
    ],
)
def test_stdlib_levels_map_to_the_nearest_lower_otel_severity(
    tel: Telemetry, app_logger: logging.Logger, levelno: int, severity: int, text: str
) -> None:
    with capture(tel) as cap:
        app_logger.log(levelno, "m")
    assert [(r.severity, r.severity_text) for r in cap.logs] == [(severity, text)]


def test_message_is_formatted_and_extra_fields_become_attributes(
    tel: Telemetry, app_logger: logging.Logger
) -> None:
    with capture(tel) as cap:
        line = sys._getframe().f_lineno + 1
        app_logger.info("user %s logged in", "ada", extra={"user_id": 7, "_private": 1})
    (record,) = cap.logs
    assert record.body == "user ada logged in"
    assert record.logger == LOGGER
    assert record.resource == tel.resource
    assert dict(record.attributes) == {
        "code.filepath": __file__,
        "code.lineno": line,
        "code.function": "test_message_is_formatted_and_extra_fields_become_attributes",
        "thread.name": "MainThread",
        "user_id": 7,
    }


def test_timestamp_is_the_stdlib_creation_time_in_nanoseconds(tel: Telemetry) -> None:
    stdlib_record = _stdlib_record()
    with capture(tel) as cap:
        PontemHandler(tel).handle(stdlib_record)
    assert cap.logs[0].timestamp == int(stdlib_record.created * 1_000_000_000)
    assert abs(cap.logs[0].timestamp / 1e9 - stdlib_record.created) < 1e-6


def test_records_from_another_thread_carry_its_name(
    tel: Telemetry, app_logger: logging.Logger
) -> None:
    with capture(tel) as cap:
        worker = threading.Thread(target=app_logger.warning, args=("from worker",), name="w-1")
        worker.start()
        worker.join()
    assert [(r.body, r.attributes["thread.name"]) for r in cap.logs] == [("from worker", "w-1")]


def test_bound_context_is_merged_with_the_lowest_precedence(
    tel: Telemetry, app_logger: logging.Logger
) -> None:
    with capture(tel) as cap, pa.bind_context(request_id="r-1", user_id=1):
        app_logger.info("handled", extra={"user_id": 2})
    attributes = cap.logs[0].attributes
    assert (attributes["request_id"], attributes["user_id"]) == ("r-1", 2)


def test_exc_info_gives_the_same_exception_attributes_as_pa_logger_exception() -> None:
    handler = PontemHandler()  # the default telemetry, like pa.logger
    logger = _attach(handler)
    try:
        with capture() as cap:
            try:
                _lookup_order(17)
            except KeyError as exc:
                logger.exception("lookup failed")
                pa.logger.exception("lookup failed", exc)
    finally:
        _detach(logger, handler)
    bridged, native = cap.logs
    exception_of_bridged = {k: v for k, v in bridged.attributes.items() if "exception." in k}
    exception_of_native = {k: v for k, v in native.attributes.items() if "exception." in k}
    assert exception_of_bridged == exception_of_native
    assert exception_of_bridged["exception.type"] == "KeyError"
    assert exception_of_bridged["exception.message"] == "'order 17'"
    assert "in _lookup_order" in exception_of_bridged["exception.stacktrace"]
    assert re.fullmatch("[0-9a-f]{40}", exception_of_bridged["exception.fingerprint"])
    assert (bridged.severity, bridged.body) == (17, "lookup failed")


def test_exc_info_outside_an_except_block_adds_no_exception_attributes(
    tel: Telemetry, app_logger: logging.Logger
) -> None:
    with capture(tel) as cap:
        app_logger.error("no exception here", exc_info=True)
    assert not [k for k in cap.logs[0].attributes if k.startswith("exception.")]


def test_stack_info_becomes_code_stacktrace(tel: Telemetry, app_logger: logging.Logger) -> None:
    with capture(tel) as cap:
        app_logger.info("where am I", stack_info=True)
    stack = cap.logs[0].attributes["code.stacktrace"]
    assert stack.startswith("Stack (most recent call last):")
    assert "test_stack_info_becomes_code_stacktrace" in stack


def test_a_message_that_fails_to_format_is_delivered_raw_and_reported_once_per_call_site(
    tel: Telemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    # Straight to the handler: through a logger, pytest's own capture handler fails the test
    # on a bad message, on purpose.
    handler = PontemHandler(tel)
    with capture(tel) as cap:
        for _ in range(3):
            handler.handle(_stdlib_record(msg="%d items", args=("many",), lineno=10))
        handler.handle(_stdlib_record(msg="%s and %s", args=("only one",), lineno=11))
    assert cap.bodies == ["%d items ('many',)"] * 3 + ["%s and %s ('only one',)"]
    assert capsys.readouterr().err.count("--- Logging error ---") == 2


class _BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "_BrokenStr()"


def test_values_with_a_broken_str_never_raise_into_the_logging_call(tel: Telemetry) -> None:
    handler = PontemHandler(tel)
    try:
        raise _BrokenStr()
    except _BrokenStr:
        exc_info = sys.exc_info()
    with capture(tel) as cap, contextlib.redirect_stderr(io.StringIO()):
        handler.handle(_stdlib_record(msg=_BrokenStr()))
        handler.handle(_stdlib_record(msg="failed", exc_info=exc_info))
    assert cap.bodies == ["_BrokenStr()", "failed"]
    expected_type = f"{_BrokenStr.__module__}._BrokenStr"
    assert cap.logs[1].attributes["exception.type"] == expected_type


@pytest.mark.parametrize("name", ["pontem_async", "pontem_async.pipeline"])
def test_records_of_pontem_async_loggers_are_not_bridged(tel: Telemetry, name: str) -> None:
    with capture(tel) as cap:
        PontemHandler(tel).handle(_stdlib_record(name=name, level=logging.ERROR))
    assert cap.records == []


@pytest.mark.parametrize("name", ["pontem_async_tools", "app.pontem_async", "root"])
def test_loggers_that_only_look_like_pontem_async_are_bridged(tel: Telemetry, name: str) -> None:
    with capture(tel) as cap:
        PontemHandler(tel).handle(_stdlib_record(name=name))
    assert [r.logger for r in cap.logs] == [name]


def test_a_failing_pipeline_is_reported_once_and_never_raises_into_the_caller(
    tel: Telemetry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_submit(record: object) -> None:
        raise RuntimeError("pipeline is broken")

    monkeypatch.setattr(tel, "_submit", broken_submit)
    monkeypatch.setattr(tel, "_min_log_severity", 1)
    install_stdlib_bridge(tel)
    try:
        logging.getLogger("tests.stdlib.failing").error("first")
        logging.getLogger("tests.stdlib.failing").error("second")
    finally:
        uninstall_stdlib_bridge(tel)
    reports = [r.getMessage() for r in caplog.records if r.name == "pontem_async"]
    assert len(reports) == 1
    assert "stdlib bridge" in reports[0]
    assert "pipeline is broken" in reports[0]


@pytest.mark.asyncio
async def test_overflow_raise_counts_the_drop_instead_of_raising_into_logging_calls() -> None:
    memory = MemoryHandler(name="memory")
    tel = Telemetry(
        "test-svc",
        handlers=[memory],
        queue_size=1,
        overflow="raise",
        install_signal_handlers=False,
    )
    tel.start()
    handler = PontemHandler(tel)
    try:
        for n in range(3):  # no await in between: the consumer cannot drain the queue
            handler.handle(_stdlib_record(msg=f"m{n}"))
        assert await tel.flush(timeout=5)
    finally:
        await tel.shutdown(timeout=5)
    assert [r.body for r in memory.logs] == ["m0"]
    assert tel.stats()["memory"]["dropped"] == {"queue_full_raised": 2}


def test_install_is_idempotent_and_uninstall_detaches(tel: Telemetry) -> None:
    try:
        first = install_stdlib_bridge(tel)
        second = install_stdlib_bridge(tel)
        assert first is second
        assert _bridges_of(tel) == [first]
    finally:
        uninstall_stdlib_bridge(tel)
    assert _bridges_of(tel) == []
    uninstall_stdlib_bridge(tel)  # a second uninstall is harmless
    assert _bridges_of(tel) == []


def test_install_reuses_a_handler_the_application_attached_and_uninstall_leaves_it(
    tel: Telemetry,
) -> None:
    own = PontemHandler(tel)
    root = logging.getLogger()
    root.addHandler(own)
    try:
        assert install_stdlib_bridge(tel) is own
        uninstall_stdlib_bridge(tel)
        assert _bridges_of(tel) == [own]
    finally:
        root.removeHandler(own)


def test_install_leaves_logger_levels_alone(tel: Telemetry, root_level: logging.Logger) -> None:
    try:
        install_stdlib_bridge(tel)
        assert root_level.level == logging.WARNING
    finally:
        uninstall_stdlib_bridge(tel)


@pytest.mark.asyncio
async def test_telemetry_with_stdlib_logging_delivers_stdlib_records_through_the_pipeline(
    memory: MemoryHandler, root_level: logging.Logger
) -> None:
    tel = Telemetry(
        "test-svc",
        handlers=[memory],
        stdlib_logging=True,
        flush_interval=0.01,
        install_signal_handlers=False,
    )
    tel.start()
    tel.start()
    try:
        assert len(_bridges_of(tel)) == 1
        log = logging.getLogger("tests.stdlib.e2e")
        log.warning("disk %d%% full", 91, extra={"mount": "/"})
        log.info("below the root logger's level")
        assert await tel.flush(timeout=5)
    finally:
        await tel.shutdown(timeout=5)
    assert _bridges_of(tel) == []
    assert [(r.body, r.severity, r.logger, r.attributes["mount"]) for r in memory.logs] == [
        ("disk 91% full", 13, "tests.stdlib.e2e", "/")
    ]


@pytest.mark.asyncio
async def test_formatter_line_equals_the_line_jsonl_handlers_write(tel: Telemetry) -> None:
    stream = io.StringIO()
    piped = Telemetry(
        "test-svc",
        handlers=[StreamHandler(stream=stream, format="json")],
        resource={"deployment.environment": "test"},
        install_signal_handlers=False,
    )
    piped.start()
    try:
        _lookup_order(3)
    except KeyError:
        record = _stdlib_record(
            level=logging.ERROR,
            msg="lookup %s",
            args=("failed",),
            exc_info=sys.exc_info(),
            user="ada",
        )
    try:
        PontemHandler(piped).handle(record)
        assert await piped.flush(timeout=5)
    finally:
        await piped.shutdown(timeout=5)
    formatted = PontemJSONFormatter(resource=piped.resource).format(record)
    assert formatted + "\n" == stream.getvalue()
    line = json.loads(formatted)
    assert (line["body"], line["attributes"]["user"]) == ("lookup failed", "ada")


def test_formatter_with_a_stdlib_handler_writes_one_json_line_per_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PontemJSONFormatter(service_name="billing"))
    logger = _attach(handler, "tests.stdlib.formatted")
    try:
        logger.info("first\nwith a newline", extra={"n": float("nan")})
        logger.warning("second")
    finally:
        _detach(logger, handler)
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert [(x["body"], x["severityText"], x["resource"]) for x in lines] == [
        ("first\nwith a newline", "INFO", {"service.name": "billing"}),
        ("second", "WARN", {"service.name": "billing"}),
    ]
    assert lines[0]["attributes"]["n"] == "NaN"


def test_formatter_resource_precedence() -> None:
    merged = PontemJSONFormatter(
        resource={"service.name": "a", "deployment.environment": "prod"}, service_name="b"
    )
    default = PontemJSONFormatter()
    record = _stdlib_record()
    assert json.loads(merged.format(record))["resource"] == {
        "service.name": "b",
        "deployment.environment": "prod",
    }
    assert json.loads(default.format(record))["resource"] == dict(pa.get_default().resource)
