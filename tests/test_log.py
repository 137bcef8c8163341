"""The structured logger: levels, attributes, bound and context attributes, exceptions with
fingerprints, and values that are hard to encode."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pontem_async as pa
from pontem_async import Level, Telemetry
from pontem_async.encoding.jsonl import encode_line
from pontem_async.fingerprint import exception_fingerprint, message_template
from pontem_async.records import LogRecord
from pontem_async.testing import MemoryHandler, capture


@pytest.fixture
def tel() -> Telemetry:
    return Telemetry("svc", handlers=[MemoryHandler()], install_signal_handlers=False)


def test_methods_use_otel_severity_numbers(tel: Telemetry) -> None:
    log = tel.get_logger("app")
    with capture(tel) as cap:
        log.trace("t")
        log.debug("d")
        log.info("i")
        log.warn("w")
        log.warning("w2")
        log.error("e")
        log.fatal("f")
        log.critical("c")
    assert [(r.body, r.severity, r.severity_text) for r in cap.logs] == [
        ("t", 1, "TRACE"),
        ("d", 5, "DEBUG"),
        ("i", 9, "INFO"),
        ("w", 13, "WARN"),
        ("w2", 13, "WARN"),
        ("e", 17, "ERROR"),
        ("f", 21, "FATAL"),
        ("c", 21, "FATAL"),
    ]
    assert all(r.logger == "app" for r in cap.logs)
    assert all(r.resource == {"service.name": "svc"} for r in cap.logs)


def test_level_parse_accepts_names_numbers_and_stdlib_words() -> None:
    assert Level.parse("warning") is Level.WARN
    assert Level.parse("CRITICAL") is Level.FATAL
    assert Level.parse(11) is Level.INFO
    assert Level.parse(Level.DEBUG) is Level.DEBUG
    with pytest.raises(ValueError, match="level: expected one of trace"):
        Level.parse("loud")
    with pytest.raises(ValueError, match="from 1 to 24"):
        Level.parse(0)


def test_attribute_precedence_context_then_bound_then_call(tel: Telemetry) -> None:
    log = tel.get_logger().bind(user="bound", request_id="r-1")
    with capture(tel) as cap, pa.bind_context(user="ctx", tenant="t-9"):
        log.info("hello", user="call")
    assert cap.logs[0].attributes == {"user": "call", "tenant": "t-9", "request_id": "r-1"}


def test_bind_returns_a_new_logger_and_leaves_the_original_alone(tel: Telemetry) -> None:
    base = tel.get_logger("x")
    bound = base.bind(a=1)
    with capture(tel) as cap:
        base.info("plain")
        bound.info("bound")
        bound.bind(b=2).info("both")
    assert [r.attributes for r in cap.logs] == [{}, {"a": 1}, {"a": 1, "b": 2}]


@pytest.mark.asyncio
async def test_context_is_per_task(tel: Telemetry) -> None:
    import asyncio

    log = tel.logger

    async def handle(n: int) -> None:
        with pa.bind_context(request=n):
            await asyncio.sleep(0.001 * (5 - n))
            log.info("done")

    with capture(tel) as cap:
        await asyncio.gather(*(handle(n) for n in range(5)))
    assert sorted(r.attributes["request"] for r in cap.logs) == [0, 1, 2, 3, 4]
    assert pa.get_context() == {}


def test_exception_captures_type_message_stack_and_fingerprint(tel: Telemetry) -> None:
    log = tel.logger
    with capture(tel) as cap:
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed", table="users")
    (record,) = cap.logs
    assert record.severity == 17
    assert record.body == "lookup failed"
    attrs = record.attributes
    assert attrs["table"] == "users"
    assert attrs["exception.type"] == "KeyError"
    assert attrs["exception.message"] == "'missing'"
    assert "Traceback (most recent call last)" in attrs["exception.stacktrace"]
    assert 'test_log.py' in attrs["exception.stacktrace"]
    assert len(attrs["exception.fingerprint"]) == 40
    int(attrs["exception.fingerprint"], 16)


def test_exception_outside_except_logs_without_exception_attributes(tel: Telemetry) -> None:
    with capture(tel) as cap:
        tel.logger.exception("no exception here")
    assert cap.logs[0].attributes == {}


def _raise_not_found(user_id: int) -> None:
    raise LookupError(f"user {user_id} not found in shard 0x7f3a2b")


def _fingerprint_of(user_id: int, service: str = "svc") -> str:
    try:
        _raise_not_found(user_id)
    except LookupError as exc:
        return exception_fingerprint(exc, service)
    raise AssertionError("unreachable")


def test_fingerprint_groups_the_same_error_with_different_ids() -> None:
    assert _fingerprint_of(42) == _fingerprint_of(7)
    assert _fingerprint_of(42, "svc") != _fingerprint_of(42, "other-svc")
    other_type = ValueError("user 42 not found in shard 0x7f3a2b")
    other_type.__traceback__ = None
    assert exception_fingerprint(other_type, "svc") != _fingerprint_of(42)


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("user 42 not found", "user <n> not found"),
        ("took 12.5ms", "took <n>ms"),
        ("order 3f2a1b9c-1d2e-4f50-8a9b-0c1d2e3f4a5b failed", "order <uuid> failed"),
        ("object at 0x7f00deadbeef", "object at <hex>"),
        ("sha deadbeef1234 missing", "sha <hex> missing"),
        ("model v3 loaded", "model v3 loaded"),
    ],
)
def test_message_template_masks_varying_parts(message: str, template: str) -> None:
    assert message_template(message) == template


def test_fingerprint_is_stable_across_processes() -> None:
    script = textwrap.dedent(
        """
        from pontem_async.fingerprint import exception_fingerprint
        def load(n):
            raise RuntimeError(f"timeout after {n} ms on 10.0.0.%d" % n)
        try:
            load(__import__("os").getpid() % 1000)
        except RuntimeError as exc:
            print(exception_fingerprint(exc, "svc"))
        """
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(outputs) == 1
    assert len(outputs.pop()) == 40


def test_logging_never_raises_for_a_value_with_a_broken_str(tel: Telemetry) -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    class BadMessage(Exception):
        def __str__(self) -> str:
            raise RuntimeError("broken")

    with capture(tel) as cap:
        tel.logger.info("evil", value=Evil())
        try:
            raise BadMessage()
        except BadMessage:
            tel.logger.exception("bad message")
    line = orjson.loads(encode_line(cap.logs[0]))
    assert line["attributes"]["value"] == "<unprintable Evil>"
    assert cap.logs[1].body == "bad message"


def _line(record: LogRecord) -> dict[str, object]:
    raw = encode_line(record)
    assert raw.endswith(b"\n")
    assert raw.count(b"\n") == 1
    return orjson.loads(raw)  # type: ignore[no-any-return]


def test_jsonl_line_shape() -> None:
    record = LogRecord(1_763_892_000_123_456_789, 13, "slow", {"ms": 120}, "app",
                       {"service.name": "svc"})
    assert _line(record) == {
        "kind": "log",
        "timestamp": 1_763_892_000.1234567,
        "timeUnixNano": 1_763_892_000_123_456_789,
        "severityNumber": 13,
        "severityText": "WARN",
        "body": "slow",
        "attributes": {"ms": 120},
        "resource": {"service.name": "svc"},
        "logger": "app",
    }


def test_non_finite_floats_and_unencodable_values_give_valid_json() -> None:
    class Point:
        def __str__(self) -> str:
            return "Point(1, 2)"

    attrs = {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "nested": {"deep": [1.5, math.nan]},
        "obj": Point(),
        "huge": 2**70,
        "surrogate": "bad \ud800 char",
        "set": {1},
        1: "int key",
    }
    attrs["ordered"] = __import__("collections").OrderedDict(x=math.nan)
    line = _line(LogRecord(1, 9, "m", attrs))
    assert line["attributes"] == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "nested": {"deep": [1.5, "NaN"]},
        "obj": "Point(1, 2)",
        "huge": str(2**70),
        "surrogate": "bad \\ud800 char",
        "set": "{1}",
        "1": "int key",
        "ordered": {"x": "NaN"},
    }
    assert math.isnan(attrs["nan"])  # type: ignore[arg-type]  # the caller's dict is untouched


def test_huge_message_is_encoded_whole() -> None:
    body = "x" * 5_000_000
    assert _line(LogRecord(1, 9, body, {}))["body"] == body


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(),
    attrs=st.dictionaries(
        st.text(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=10,
        ),
    ),
)
def test_any_message_and_attributes_encode_to_one_valid_json_line(
    body: str, attrs: dict[str, object]
) -> None:
    line = _line(LogRecord(1, 9, body, attrs))
    # text survives as is; lone surrogates (not encodable as UTF-8) are written escaped
    assert line["body"] == body.encode("utf-8", "backslashreplace").decode()
    assert set(line["attributes"]) == {
        k.encode("utf-8", "backslashreplace").decode() for k in attrs
    }


def test_is_enabled_for_reflects_the_handlers_levels() -> None:
    tel = Telemetry("svc", handlers=[MemoryHandler(level="warn")], install_signal_handlers=False)
    assert not tel.logger.is_enabled_for(Level.INFO)
    assert tel.logger.is_enabled_for(Level.ERROR)
    with capture(tel, level="warn") as cap:
        tel.logger.info("skipped")
        tel.logger.warn("kept")
    assert cap.bodies == ["kept"]


def test_records_are_immutable() -> None:
    record = LogRecord(1, 9, "m", {})
    with pytest.raises(AttributeError):
        record.body = "changed"  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_logs_inside_a_profiled_call_carry_its_trace_and_span_ids(tel: Telemetry) -> None:
    from pontem_async.profiler import Profiler
    from pontem_async.records import ProfileRecord

    profile = Profiler(tel).profile

    @profile
    def child() -> None:
        tel.logger.info("in child")

    @profile
    def root() -> None:
        tel.logger.info("in root")
        child()

    with capture(tel) as cap:
        tel.logger.info("outside")
        root()
    (tree,) = [r for r in cap.records if isinstance(r, ProfileRecord)]
    outside, in_root, in_child = cap.logs
    assert (outside.trace_id, outside.span_id) == (None, None)
    assert (in_root.trace_id, in_root.span_id) == (tree.trace_id, tree.root.span_id)
    assert (in_child.trace_id, in_child.span_id) == (tree.trace_id, tree.root.children[0].span_id)
    line = _line(in_child)
    assert line["traceId"] == tree.trace_id
    assert line["spanId"] == tree.root.children[0].span_id
