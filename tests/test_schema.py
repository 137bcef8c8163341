"""Real JSONL output validated against the JSON Schemas shipped in ``pontem_async/schemas/``,
and SCHEMA.md kept equal to those files.

Log lines come from ``encode_line`` and the stdlib formatter; metric and profile lines from
``encode_line`` of real ``MetricRecord`` s and ``ProfileRecord`` s (every metric type, nested
call trees with errors and unfinished calls), by example and by hypothesis. What a schema cannot
say (bucket counts one longer than bounds, child/parent span ids) is checked in Python here."""

from __future__ import annotations

import json
import logging
import math
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from pontem_async.encoding.jsonl import encode_line
from pontem_async.handlers.base import ALL_KINDS
from pontem_async.records import (
    CallNode,
    EventRecord,
    HistogramValue,
    LogRecord,
    MetricPoint,
    MetricRecord,
    ProfileRecord,
    SummaryValue,
)
from pontem_async.stdlib import PontemJSONFormatter

SCHEMA_MD = Path(__file__).resolve().parent.parent / "SCHEMA.md"
SCHEMAS = files("pontem_async").joinpath("schemas")
LOG_SCHEMA = json.loads(SCHEMAS.joinpath("log.json").read_text("utf-8"))
LOG = Draft202012Validator(LOG_SCHEMA)
METRIC = Draft202012Validator(json.loads(SCHEMAS.joinpath("metric.json").read_text("utf-8")))
PROFILE = Draft202012Validator(json.loads(SCHEMAS.joinpath("profile.json").read_text("utf-8")))
EVENT = Draft202012Validator(json.loads(SCHEMAS.joinpath("event.json").read_text("utf-8")))
SERIES = Draft202012Validator(json.loads(SCHEMAS.joinpath("series.json").read_text("utf-8")))
EMBEDDED = re.compile(
    r"<!-- schema:(?P<kind>\w+):begin -->\s*```json\n(?P<body>.*?)\n```\s*"
    r"<!-- schema:(?P=kind):end -->",
    re.DOTALL,
)
STANDARD_STDLIB_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-JSON token {token} on a JSONL line")


def parse_line(raw: bytes) -> dict[str, Any]:
    """Parse one JSONL line the way a strict reader does: UTF-8, one line, plain JSON only."""
    assert raw.endswith(b"\n")
    text = raw.decode("utf-8")
    assert "\n" not in text[:-1]
    line = json.loads(text, parse_constant=_reject_constant)
    assert isinstance(line, dict)
    return line


def assert_valid_log_line(line: dict[str, Any]) -> None:
    LOG.validate(line)
    assert line["timestamp"] == line["timeUnixNano"] / 1e9


# ---------------------------------------------------------------------------- the documents


def test_the_package_schemas_are_valid_draft_2020_12_schemas() -> None:
    names = sorted(p.name for p in SCHEMAS.iterdir() if p.name.endswith(".json"))
    assert {"log.json", "metric.json", "profile.json", "series.json"} <= set(names)
    for name in names:
        Draft202012Validator.check_schema(json.loads(SCHEMAS.joinpath(name).read_text("utf-8")))


def test_schema_md_embeds_exactly_the_package_schemas() -> None:
    text = SCHEMA_MD.read_text("utf-8")
    embedded = {m["kind"]: json.loads(m["body"]) for m in EMBEDDED.finditer(text)}
    shipped = {
        p.name.removesuffix(".json"): json.loads(p.read_text("utf-8"))
        for p in SCHEMAS.iterdir()
        if p.name.endswith(".json")
    }
    assert embedded == shipped


def test_schema_md_has_a_section_for_every_record_kind_the_pipeline_routes() -> None:
    headings = re.findall(r"^## Kind `(\w+)`", SCHEMA_MD.read_text("utf-8"), re.MULTILINE)
    assert sorted(headings) == sorted(ALL_KINDS)


def test_schema_md_example_log_line_is_valid() -> None:
    text = SCHEMA_MD.read_text("utf-8")
    examples = re.findall(r"```json\n(\{\"kind\":\"log\".*?)\n```", text)
    assert len(examples) == 1
    assert_valid_log_line(parse_line(examples[0].encode() + b"\n"))


def test_schema_md_example_metric_and_profile_lines_are_valid() -> None:
    text = SCHEMA_MD.read_text("utf-8")
    metrics = re.findall(r"```json\n(\{\"kind\":\"metric\".*?)\n```", text)
    profiles = re.findall(r"```json\n(\{\"kind\":\"profile\".*?)\n```", text)
    assert (len(metrics), len(profiles)) == (3, 1)
    for example in metrics:
        assert_valid_metric_line(parse_line(example.encode() + b"\n"))
    assert_valid_profile_line(parse_line(profiles[0].encode() + b"\n"))


def test_schema_md_example_series_line_is_valid() -> None:
    """(Series lines from real records are validated in tests/test_series.py.)"""
    text = SCHEMA_MD.read_text("utf-8")
    examples = re.findall(r"```json\n(\{\"kind\":\"series\".*?)\n```", text)
    assert len(examples) == 1
    line = parse_line(examples[0].encode() + b"\n")
    SERIES.validate(line)
    assert len(line["values"]) == len(line["steps"])


# ---------------------------------------------------------------------------- examples


def test_a_full_log_line_is_valid() -> None:
    record = LogRecord(
        1_718_000_000_123_456_789,
        13,
        "retrying",
        {"attempt": 2, "ratio": math.nan, "peers": [{"up": math.inf}]},
        "app.db",
        {"service.name": "checkout", "service.version": "1.2.0"},
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
    line = parse_line(encode_line(record))
    assert_valid_log_line(line)
    assert line["attributes"] == {"attempt": 2, "ratio": "NaN", "peers": [{"up": "Infinity"}]}


def _good_line() -> dict[str, Any]:
    return parse_line(encode_line(LogRecord(1_000_000_000, 9, "m", {}, "app", {"a": 1})))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kind": "metric"}, "another kind"),
        ({"severityNumber": 0}, "severity below 1"),
        ({"severityNumber": 25}, "severity above 24"),
        ({"severityNumber": 13}, "severityText INFO with a WARN number"),
        ({"severityText": "WARNING"}, "stdlib level name"),
        ({"timeUnixNano": 1.5}, "fractional nanoseconds"),
        ({"body": None}, "null body"),
        ({"attributes": []}, "attributes not an object"),
        ({"logger": ""}, "empty logger (the field is omitted instead)"),
        ({"traceId": "4BF92F3577B34DA6A3CE929D0E0E4736"}, "uppercase trace id"),
        ({"spanId": "00f067aa0ba902"}, "short span id"),
        ({"level": "info"}, "unknown field"),
        ({"resource": None}, "null resource"),
    ],
)
def test_the_log_schema_rejects_malformed_lines(change: dict[str, Any], why: str) -> None:
    line = {**_good_line(), **change}
    with pytest.raises(ValidationError):
        LOG.validate(line)


@pytest.mark.parametrize("missing", ["kind", "timestamp", "timeUnixNano", "body", "resource"])
def test_the_log_schema_requires_every_mandatory_field(missing: str) -> None:
    line = _good_line()
    del line[missing]
    with pytest.raises(ValidationError):
        LOG.validate(line)


# ---------------------------------------------------------------------------- properties


class Opaque:
    """An application object JSON cannot hold: written as ``str(value)``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __str__(self) -> str:
        return f"<opaque {self.n}>"


class Unprintable:
    """``str`` raises: written as ``repr(value)``."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        return "Unprintable()"


texts = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=2**200)
    | st.integers(min_value=-(2**200), max_value=-(2**63) - 1)
    | st.floats()
    | st.sampled_from([math.nan, math.inf, -math.inf])
    | texts
    | st.builds(Opaque, st.integers(0, 9))
    | st.builds(Unprintable)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(texts, inner, max_size=4)
    ),
    max_leaves=16,
)
attribute_dicts = st.dictionaries(texts, values, max_size=6)


def expected(value: Any) -> Any:
    """What SCHEMA.md says a value is written as (for the types generated here)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {expected(k): expected(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expected(v) for v in value]
    if isinstance(value, Unprintable):
        return repr(value)
    return str(value)


@PROPERTY
@given(
    timestamp=st.integers(0, 4_102_444_800_000_000_000),
    severity=st.integers(1, 24),
    body=texts,
    attributes=attribute_dicts,
    logger=texts,
    resource=st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10)),
    trace_id=st.none() | st.binary(min_size=16, max_size=16).map(bytes.hex),
    span_id=st.none() | st.binary(min_size=8, max_size=8).map(bytes.hex),
)
def test_every_encoded_log_line_is_valid_and_keeps_its_values(
    timestamp: int,
    severity: int,
    body: str,
    attributes: dict[str, Any],
    logger: str,
    resource: dict[str, str] | None,
    trace_id: str | None,
    span_id: str | None,
) -> None:
    record = LogRecord(timestamp, severity, body, attributes, logger, resource, trace_id, span_id)
    line = parse_line(encode_line(record))
    assert_valid_log_line(line)
    assert line["timeUnixNano"] == timestamp
    assert line["body"] == expected(body)
    assert line["attributes"] == expected(attributes)
    assert line["resource"] == expected(resource or {})
    assert line.get("logger", "") == expected(logger)
    assert (line.get("traceId"), line.get("spanId")) == (trace_id, span_id)


extra_keys = st.text(min_size=1, max_size=12).filter(
    lambda k: k not in STANDARD_STDLIB_ATTRS and not k.startswith("_")
)


@PROPERTY
@given(
    name=st.text(min_size=1, max_size=20),
    levelno=st.integers(0, 100),
    msg=texts,
    args=st.none() | st.tuples(scalars) | st.tuples(scalars, scalars),
    extra=st.dictionaries(extra_keys, values, max_size=5),
)
def test_stdlib_formatter_lines_are_valid_log_lines(
    name: str, levelno: int, msg: str, args: tuple[Any, ...] | None, extra: dict[str, Any]
) -> None:
    record = logging.LogRecord(name, levelno, "/srv/app.py", 7, msg, args, None, "handler")
    record.__dict__.update(extra)
    formatted = PontemJSONFormatter(service_name="svc").format(record)
    line = parse_line(formatted.encode("utf-8") + b"\n")
    assert_valid_log_line(line)
    automatic = {
        "code.filepath": "/srv/app.py",
        "code.lineno": 7,
        "code.function": "handler",
        "thread.name": record.threadName,
    }
    assert line["attributes"] == expected({**automatic, **extra})
    assert line["logger"] == expected(name)


def _fail(order: int) -> None:
    raise LookupError(f"order {order} missing")


def test_stdlib_formatter_lines_with_exceptions_stacks_and_custom_levels_are_valid() -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(PontemJSONFormatter(resource={"service.name": "svc", "pid": 1}))
    logger = logging.getLogger("tests.schema.formatter")
    logger.addHandler(handler)
    logger.setLevel(1)
    try:
        try:
            _fail(3)
        except LookupError:
            logger.exception("failed")
            logger.critical("again", exc_info=True, stack_info=True)
        logger.log(5, "custom trace level")
        logger.log(25, "custom notice level")
        logger.info("values", extra={"nan": math.nan, "big": 2**80, "obj": Opaque(1)})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    parsed = [parse_line(text.encode("utf-8") + b"\n") for text in lines]
    for line in parsed:
        assert_valid_log_line(line)
    assert [(x["severityNumber"], x["severityText"]) for x in parsed] == [
        (17, "ERROR"),
        (21, "FATAL"),
        (1, "TRACE"),
        (9, "INFO"),
        (9, "INFO"),
    ]
    assert re.fullmatch("[0-9a-f]{40}", parsed[0]["attributes"]["exception.fingerprint"])
    assert "code.stacktrace" in parsed[1]["attributes"]
    assert {k: parsed[4]["attributes"][k] for k in ("nan", "big", "obj")} == {
        "nan": "NaN",
        "big": str(2**80),
        "obj": "<opaque 1>",
    }


# ---------------------------------------------------------------------------- metric lines

T0 = 1_718_000_000_123_456_789
START = T0 - 60_000_000_000
RESOURCE = {"service.name": "checkout", "service.version": "1.2.0"}


def assert_valid_metric_line(line: dict[str, Any]) -> None:
    """The schema, plus what it cannot say."""
    METRIC.validate(line)
    assert line["timestamp"] == line["timeUnixNano"] / 1e9
    for point in line["points"]:
        if line["type"] == "histogram":
            assert len(point["bucketCounts"]) == len(point["bounds"]) + 1
            assert sum(point["bucketCounts"]) == point["count"]
            assert point["bounds"] == sorted(set(point["bounds"]))
        if line["type"] == "enum":
            assert point["value"] in line["states"]


def metric(mtype: Any, *points: MetricPoint, states: tuple[str, ...] = ()) -> MetricRecord:
    return MetricRecord(T0, "app.metric", mtype, "ms", "what it measures", points, RESOURCE, states)


METRIC_EXAMPLES = {
    "counter": metric(
        "counter",
        MetricPoint({"route": "/a"}, START, 3.0),
        MetricPoint({"route": "/b"}, START, 0.5),
        MetricPoint({"route": "/c"}, START, math.inf),
    ),
    "gauge": metric(
        "gauge",
        MetricPoint({}, START, -2.5),
        MetricPoint({"q": "nan"}, START, math.nan),
        MetricPoint({"q": "inf"}, START, math.inf),
        MetricPoint({"q": "-inf"}, START, -math.inf),
    ),
    "histogram": metric(
        "histogram",
        MetricPoint({"op": "read"}, START, HistogramValue(6, 31.5, (1.0, 5.0, 10.0), (1, 2, 0, 3))),
        MetricPoint({"op": "idle"}, START, HistogramValue(0, 0.0, (0.25,), (0, 0))),
    ),
    "summary": metric(
        "summary",
        MetricPoint({}, START, SummaryValue(4, 10.0)),
        MetricPoint({"k": "q"}, START, SummaryValue(4, math.inf, ((0.5, 2.0), (0.99, math.nan)))),
    ),
    "info": metric("info", MetricPoint({}, START, {"version": "1.2.0", "commit": "abc"})),
    "enum": metric(
        "enum",
        MetricPoint({"worker": "1"}, START, "busy"),
        MetricPoint({"worker": "2"}, START, "idle"),
        states=("idle", "busy", "stopped"),
    ),
    "no series yet": metric("counter"),
}


@pytest.mark.parametrize("case", sorted(METRIC_EXAMPLES))
def test_every_metric_type_encodes_to_a_valid_line(case: str) -> None:
    record = METRIC_EXAMPLES[case]
    line = parse_line(encode_line(record))
    assert_valid_metric_line(line)
    assert (line["name"], line["type"], line["unit"]) == ("app.metric", record.type, "ms")
    assert len(line["points"]) == len(record.points)


def test_metric_values_are_written_as_schema_md_says() -> None:
    gauge = parse_line(encode_line(METRIC_EXAMPLES["gauge"]))
    assert [p["value"] for p in gauge["points"]] == [-2.5, "NaN", "Infinity", "-Infinity"]
    summary = parse_line(encode_line(METRIC_EXAMPLES["summary"]))
    assert summary["points"][1] == {
        "labels": {"k": "q"},
        "startTimeUnixNano": START,
        "count": 4,
        "sum": "Infinity",
        "quantiles": [{"quantile": 0.5, "value": 2.0}, {"quantile": 0.99, "value": "NaN"}],
    }
    enum = parse_line(encode_line(METRIC_EXAMPLES["enum"]))
    assert enum["states"] == ["idle", "busy", "stopped"]
    assert "states" not in parse_line(encode_line(METRIC_EXAMPLES["counter"]))


def _good_metric(case: str = "histogram") -> dict[str, Any]:
    return parse_line(encode_line(METRIC_EXAMPLES[case]))


def _with_point(case: str, **change: Any) -> dict[str, Any]:
    line = _good_metric(case)
    line["points"][0] = {**line["points"][0], **change}
    return line


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ({**_good_metric(), "kind": "log"}, "another kind"),
        ({**_good_metric(), "type": "timer"}, "unknown type"),
        ({**_good_metric(), "name": "2xx"}, "name starting with a digit"),
        ({**_good_metric(), "name": ""}, "empty name"),
        ({**_good_metric(), "unit": None}, "null unit"),
        ({**_good_metric(), "points": {}}, "points not a list"),
        ({**_good_metric(), "help": "x"}, "unknown field"),
        ({**_good_metric(), "states": ["a"]}, "states on a histogram"),
        ({k: v for k, v in _good_metric("enum").items() if k != "states"}, "enum without states"),
        ({**_good_metric("enum"), "states": ["a", "a"]}, "repeated state"),
        (_with_point("histogram", value=1.0), "histogram point with a value"),
        (_with_point("histogram", bucketCounts=[1, -1, 0, 6]), "negative bucket count"),
        (_with_point("histogram", bounds=[1.0, None, 10.0]), "null bound (an infinite bound)"),
        (_with_point("histogram", count=1.5), "fractional count"),
        (_with_point("counter", value=-1.0), "negative counter"),
        (_with_point("counter", value="NaN"), "NaN counter"),
        (_with_point("gauge", value=None), "null gauge"),
        (_with_point("gauge", value="nan"), "non-finite string spelled otherwise"),
        (_with_point("gauge", labels={"route": 1}), "non-string label value"),
        (_with_point("gauge", labels={"bad-name": "x"}), "label name with a dash"),
        (_with_point("gauge", startTimeUnixNano=-1), "negative start time"),
        (_with_point("summary", quantiles=[{"quantile": 1.5, "value": 1}]), "quantile above 1"),
        (_with_point("summary", quantiles=[[0.5, 1.0]]), "quantile as a pair"),
        (_with_point("info", value={"version": 1}), "non-string info value"),
        (_with_point("enum", value=["busy"]), "enum state not a string"),
    ],
)
def test_the_metric_schema_rejects_malformed_lines(line: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError):
        METRIC.validate(line)


finite = st.floats(allow_nan=False, allow_infinity=False)
any_float = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf])
label_names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_.]{0,8}\Z")
label_sets = st.dictionaries(label_names, st.text(max_size=8), max_size=3)


@st.composite
def histogram_values(draw: st.DrawFn) -> HistogramValue:
    bounds = tuple(sorted(draw(st.sets(finite, min_size=1, max_size=6))))
    counts = tuple(
        draw(st.lists(st.integers(0, 10**12), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    )
    return HistogramValue(sum(counts), draw(any_float), bounds, counts)


@st.composite
def metric_records(draw: st.DrawFn) -> MetricRecord:
    mtype = draw(st.sampled_from(["counter", "gauge", "histogram", "summary", "info", "enum"]))
    states = tuple(draw(st.lists(st.text(max_size=6), min_size=1, max_size=4, unique=True)))
    value: st.SearchStrategy[Any] = {
        "counter": st.floats(min_value=0) | st.integers(0, 2**53),
        "gauge": any_float,
        "histogram": histogram_values(),
        "summary": st.builds(
            SummaryValue,
            st.integers(0, 2**40),
            any_float,
            st.lists(st.tuples(st.floats(0, 1), any_float), max_size=3).map(tuple),
        ),
        "info": label_sets,
        "enum": st.sampled_from(states),
    }[mtype]
    points = draw(
        st.lists(st.builds(MetricPoint, label_sets, st.integers(0, 2**63 - 1), value), max_size=4)
    )
    return MetricRecord(
        draw(st.integers(0, 4_102_444_800_000_000_000)),
        draw(st.from_regex(r"\A[a-zA-Z_:][a-zA-Z0-9_:.]{0,20}\Z")),
        mtype,
        draw(st.sampled_from(["", "ms", "By", "{request}"])),
        draw(texts),
        tuple(points),
        draw(st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10))),
        states if mtype == "enum" else (),
    )


@PROPERTY
@given(record=metric_records())
def test_every_encoded_metric_line_is_valid_and_keeps_its_values(record: MetricRecord) -> None:
    line = parse_line(encode_line(record))
    assert_valid_metric_line(line)
    assert line["timeUnixNano"] == record.timestamp
    assert line["resource"] == (record.resource or {})
    for point, written in zip(record.points, line["points"], strict=True):
        assert written["labels"] == point.labels
        assert written["startTimeUnixNano"] == point.start_time
        value = point.value
        if isinstance(value, HistogramValue):
            assert written["bounds"] == list(value.bounds)
            assert written["bucketCounts"] == list(value.bucket_counts)
            assert written["sum"] == expected(value.sum)
        elif isinstance(value, SummaryValue):
            assert written["quantiles"] == [
                {"quantile": q, "value": expected(v)} for q, v in value.quantiles
            ]
        else:
            assert written["value"] == expected(value)


# ---------------------------------------------------------------------------- profile lines


def assert_valid_profile_line(line: dict[str, Any]) -> None:
    """The schema, plus what it cannot say: span links, unique ids, the unfinished count."""
    PROFILE.validate(line)
    root = line["root"]
    assert line["timestamp"] == line["timeUnixNano"] / 1e9
    assert line["timeUnixNano"] == root["start_unix_nano"]
    seen: list[str] = []
    unfinished = 0
    stack = [root]
    while stack:
        node = stack.pop()
        seen.append(node["span_id"])
        unfinished += node["attributes"].get("unfinished", False)
        for child in node["children"]:
            assert child["parent_span_id"] == node["span_id"]
            stack.append(child)
    assert len(seen) == len(set(seen))
    assert line["unfinished"] == unfinished


class Spans:
    """Unique span ids for a test's tree, deterministic."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.n:016x}"


def call(
    spans: Spans,
    name: str,
    start: int,
    duration: int,
    children: list[CallNode] = [],  # noqa: B006 - never mutated
    *,
    error: dict[str, str] | None = None,
    **attributes: Any,
) -> CallNode:
    node = CallNode(name, spans(), None, start, attributes=attributes)
    node.duration_ns = duration
    node.error = error
    for child in children:
        child.parent_span_id = node.span_id
    node.children = list(children)
    return node


def profile(root: CallNode, unfinished: int = 0) -> ProfileRecord:
    return ProfileRecord(
        root.start_unix_nano, "4bf92f3577b34da6a3ce929d0e0e4736", root, RESOURCE, unfinished
    )


FAILED = {"type": "app.db.StaleRow", "message": "row 7 changed", "fingerprint": "ab" * 20}


def nested_profile() -> ProfileRecord:
    s = Spans()
    root = call(
        s,
        "Svc:handle",
        T0,
        9_000_000,
        [
            call(s, "Svc:handle.auth", T0 + 10, 1_000_000, route="/a", ratio=math.nan),
            call(
                s,
                "Svc:handle.query",
                T0 + 20,
                5_000_000,
                [
                    call(s, "Svc:handle.query.fetch", T0 + 30, 2_000_000, error=FAILED),
                    call(
                        s,
                        "Svc:handle.query.fetch",
                        T0 + 40,
                        3_000_000,
                        unfinished=True,
                        peers=[{"up": -math.inf}],
                        big=2**70,
                    ),
                ],
                error=FAILED,
            ),
        ],
    )
    return profile(root, unfinished=1)


def test_a_nested_profile_with_errors_and_unfinished_calls_is_valid() -> None:
    line = parse_line(encode_line(nested_profile()))
    assert_valid_profile_line(line)
    auth, query = line["root"]["children"]
    assert auth["attributes"] == {"route": "/a", "ratio": "NaN"}
    assert query["error"] == FAILED
    assert query["children"][1]["attributes"] == {
        "unfinished": True,
        "peers": [{"up": "-Infinity"}],
        "big": str(2**70),
    }


def test_a_single_call_profile_is_valid() -> None:
    line = parse_line(encode_line(profile(call(Spans(), "job", T0, 0))))
    assert_valid_profile_line(line)
    assert line["root"]["children"] == []


def _good_profile() -> dict[str, Any]:
    return parse_line(encode_line(nested_profile()))


def _with_node(path: tuple[int, ...], **change: Any) -> dict[str, Any]:
    """The nested profile with the node at ``path`` (child indexes from the root) changed."""
    line = _good_profile()
    node = line["root"]
    for index in path:
        node = node["children"][index]
    node.update(change)
    return line


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ({**_good_profile(), "kind": "metric"}, "another kind"),
        ({**_good_profile(), "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736"}, "uppercase trace id"),
        ({**_good_profile(), "unfinished": -1}, "negative unfinished count"),
        ({**_good_profile(), "root": None}, "no tree"),
        ({**_good_profile(), "spans": []}, "unknown field"),
        (_with_node((), parent_span_id="00f067aa0ba902b7"), "root with a parent"),
        (_with_node((1,), parent_span_id=None), "child without a parent"),
        (_with_node((1, 0), duration_ns=None), "deep node without a duration"),
        (_with_node((1, 0), duration_ns=-5), "negative duration"),
        (_with_node((1, 0), duration_ns=1.5), "fractional duration"),
        (_with_node((1, 1), span_id="xyz"), "deep node with a bad span id"),
        (_with_node((0,), name=""), "empty name"),
        (_with_node((0,), children=None), "null children"),
        (_with_node((0,), attributes={"unfinished": False}), "unfinished not true"),
        (_with_node((0,), error={"type": "E", "message": "m"}), "error without fingerprint"),
        (_with_node((0,), error={**FAILED, "fingerprint": "x" * 40}), "bad fingerprint"),
        (_with_node((0,), error="boom"), "error as a string"),
        (_with_node((1, 1), method="x"), "unknown node field"),
        (_with_node((1,), children=[{"name": "x"}]), "child missing fields"),
    ],
)
def test_the_profile_schema_rejects_malformed_lines(line: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError):
        PROFILE.validate(line)


@st.composite
def call_trees(draw: st.DrawFn, spans: Spans, name: str, depth: int = 0) -> CallNode:
    width = draw(st.integers(0, 3 if depth < 4 else 0))
    children = [draw(call_trees(spans, f"{name}.c{i}", depth + 1)) for i in range(width)]
    error = draw(
        st.none()
        | st.builds(
            lambda t, m: {"type": t, "message": m, "fingerprint": "0f" * 20},
            st.text(min_size=1, max_size=10),
            texts,
        )
    )
    attributes = draw(attribute_dicts.filter(lambda a: "unfinished" not in a))
    if draw(st.booleans()) and depth:
        attributes["unfinished"] = True
    node = call(
        spans,
        name,
        draw(st.integers(0, 2**62)),
        draw(st.integers(0, 2**63 - 1)),
        children,
        error=error,
    )
    node.attributes = attributes
    return node


@PROPERTY
@given(data=st.data(), name=st.text(min_size=1, max_size=20))
def test_every_encoded_profile_line_is_valid_and_keeps_its_tree(
    data: st.DataObject, name: str
) -> None:
    root = data.draw(call_trees(Spans(), name))
    unfinished = sum(1 for node in root.walk() if node.attributes.get("unfinished") is True)
    line = parse_line(encode_line(profile(root, unfinished)))
    assert_valid_profile_line(line)
    written = [line["root"]]
    for node in root.walk():  # depth first in start order, like the written tree read so
        got = written.pop()
        assert (got["name"], got["span_id"], got["duration_ns"]) == (
            expected(node.name),
            node.span_id,
            node.duration_ns,
        )
        assert got["error"] == expected(node.error)
        assert got["attributes"] == expected(node.attributes)
        written.extend(reversed(got["children"]))
    assert written == []


def test_a_call_tree_deeper_than_json_allows_is_written_truncated_not_lost() -> None:
    """orjson refuses nesting beyond 255; the encoder cuts the tree at MAX_TREE_DEPTH and says
    how many calls it summarised, instead of failing the whole line."""
    from pontem_async.encoding.jsonl import MAX_TREE_DEPTH

    root = CallNode("App:deep", "a" * 16, None, 1, attributes={})
    root.duration_ns = 10
    node = root
    for level in range(1, 400):
        child = CallNode("App:deep.r", f"{level:016x}", node.span_id, 1 + level)
        child.duration_ns = 1
        node.children.append(child)
        node = child
    line = parse_line(encode_line(ProfileRecord(1, "b" * 32, root, {"service.name": "s"})))
    assert_valid_profile_line(line)
    depth, current = 0, line["root"]
    while current["children"]:
        current, depth = current["children"][0], depth + 1
    assert depth == MAX_TREE_DEPTH
    assert current["attributes"] == {"truncated_descendants": 399 - MAX_TREE_DEPTH}


# ---------------------------------------------------------------------------- event lines


def test_schema_md_example_event_line_is_valid() -> None:
    examples = re.findall(r"```json\n(\{\"kind\":\"event\".*?)\n```", SCHEMA_MD.read_text("utf-8"))
    assert len(examples) == 1
    EVENT.validate(parse_line(examples[0].encode() + b"\n"))


@PROPERTY
@given(
    timestamp=st.integers(0, 4_102_444_800_000_000_000),
    type_=st.text(min_size=1, max_size=20),
    data=attribute_dicts,
    meta=st.none() | attribute_dicts,
    run_id=st.none() | st.text(min_size=1, max_size=10),
    resource=st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10)),
)
def test_every_encoded_event_line_is_valid_and_keeps_its_values(
    timestamp: int,
    type_: str,
    data: dict[str, Any],
    meta: dict[str, Any] | None,
    run_id: str | None,
    resource: dict[str, str] | None,
) -> None:
    line = parse_line(encode_line(EventRecord(timestamp, type_, data, meta, run_id, resource)))
    EVENT.validate(line)
    assert line["timestamp"] == timestamp / 1e9
    assert (line["timeUnixNano"], line["type"]) == (timestamp, expected(type_))
    assert line["data"] == expected(data)
    assert line["meta"] == expected(meta or {})
    assert line["runId"] == (None if run_id is None else expected(run_id))
    assert line["resource"] == expected(resource or {})


@pytest.mark.parametrize(
    "change",
    [{"type": ""}, {"data": []}, {"runId": ""}, {"meta": None}, {"seq": 1}, {"kind": "log"}],
)
def test_the_event_schema_rejects_malformed_lines(change: dict[str, Any]) -> None:
    good = parse_line(encode_line(EventRecord(1_000_000_000, "t", {"a": 1}, None, "001", {})))
    EVENT.validate(good)
    with pytest.raises(ValidationError):
        EVENT.validate({**good, **change})
