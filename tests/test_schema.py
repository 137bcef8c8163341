"""Real JSONL output validated against the JSON Schemas shipped in ``pontem_async/schemas/``,
and SCHEMA.md kept equal to those files."""

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
from pontem_async.records import LogRecord
from pontem_async.stdlib import PontemJSONFormatter

SCHEMA_MD = Path(__file__).resolve().parent.parent / "SCHEMA.md"
SCHEMAS = files("pontem_async").joinpath("schemas")
LOG_SCHEMA = json.loads(SCHEMAS.joinpath("log.json").read_text("utf-8"))
LOG = Draft202012Validator(LOG_SCHEMA)
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
    assert "log.json" in names
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
