"""The strict OTLP/JSON validator (``otlp_validate``) is itself checked here: it must accept the
official example bodies of opentelemetry-proto (``examples/*.json``) and refuse known-bad ones,
including the bodies ``json_format.Parse`` alone lets through."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from google.protobuf import json_format
from otlp_validate import OTLPValidationError, validate

# Written out from open-telemetry/opentelemetry-proto examples/{logs,metrics,trace}.json.
# They use JSON numbers for 64-bit integers and uppercase hex ids: valid OTLP (receivers accept
# both), but not the canonical form pontem-async writes.
OFFICIAL_LOGS = """{"resourceLogs": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeLogs": [{
    "scope": {"name": "my.library", "version": "1.0.0",
              "attributes": [{"key": "my.scope.attribute",
                              "value": {"stringValue": "some scope attribute"}}]},
    "logRecords": [{
      "timeUnixNano": 1544712660300000000,
      "observedTimeUnixNano": 1544712660300000000,
      "severityText": "Information",
      "traceId": "5B8EFFF798038103D269B633813FC60C",
      "spanId": "EEE19B7EC3C1B174",
      "body": {"stringValue": "Example log record"},
      "attributes": [
        {"key": "string.attribute", "value": {"stringValue": "some string"}},
        {"key": "boolean.attribute", "value": {"boolValue": true}},
        {"key": "int.attribute", "value": {"intValue": 10}},
        {"key": "double.attribute", "value": {"doubleValue": 637.704}},
        {"key": "array.attribute", "value": {"arrayValue": {"values": [
          {"stringValue": "many"}, {"stringValue": "values"}]}}},
        {"key": "map.attribute", "value": {"kvlistValue": {"values": [
          {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}}
      ]}]}]}]}"""

OFFICIAL_METRICS = """{"resourceMetrics": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeMetrics": [{
    "scope": {"name": "my.library", "version": "1.0.0",
              "attributes": [{"key": "my.scope.attribute",
                              "value": {"stringValue": "some scope attribute"}}]},
    "metrics": [
      {"name": "my.counter", "unit": "1", "description": "I`m a Counter",
       "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
         {"asDouble": 5, "startTimeUnixNano": 1544712660300000000,
          "timeUnixNano": 1544712660300000000,
          "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}]}]}},
      {"name": "my.gauge", "unit": "1", "description": "I`m a Gauge",
       "gauge": {"dataPoints": [
         {"asDouble": 10, "timeUnixNano": 1544712660300000000,
          "attributes": [{"key": "my.gauge.attr", "value": {"stringValue": "some value"}}]}]}},
      {"name": "my.histogram", "unit": "1", "description": "I`m a Histogram",
       "histogram": {"aggregationTemporality": 1, "dataPoints": [
         {"startTimeUnixNano": 1544712660300000000, "timeUnixNano": 1544712660300000000,
          "count": 3, "sum": 3, "bucketCounts": [1, 1, 1], "explicitBounds": [1],
          "min": 1, "max": 1,
          "attributes": [{"key": "my.histogram.attr",
                          "value": {"stringValue": "some value"}}]}]}}
    ]}]}]}"""

OFFICIAL_TRACE = """{"resourceSpans": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeSpans": [{
    "scope": {"name": "my.library", "version": "1.0.0",
              "attributes": [{"key": "my.scope.attribute",
                              "value": {"stringValue": "some scope attribute"}}]},
    "spans": [{
      "traceId": "5B8EFFF798038103D269B633813FC60C",
      "spanId": "EEE19B7EC3C1B174",
      "parentSpanId": "EEE19B7EC3C1B173",
      "name": "I'm a server span",
      "startTimeUnixNano": 1544712660000000000,
      "endTimeUnixNano": 1544712661000000000,
      "kind": 2,
      "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]
    }]}]}]}"""

OFFICIAL = {"logs": OFFICIAL_LOGS, "metrics": OFFICIAL_METRICS, "traces": OFFICIAL_TRACE}

# An early examples/events.json wrote kvlistValue as a bare list (it must be {"values": [...]}).
EARLY_EVENTS_EXAMPLE = """{"resourceLogs": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeLogs": [{"scope": {"name": "my.library", "version": "1.0.0"},
    "logRecords": [{
      "timeUnixNano": "1544712660300000000", "observedTimeUnixNano": "1544712660300000000",
      "severityNumber": 9,
      "attributes": [{"key": "event.name", "value": {"stringValue": "browser.page_view"}}],
      "body": {"kvlistValue": [{"key": "type", "value": {"intValue": "0"}},
                               {"key": "url", "value": {"stringValue": "https://example.com"}}]}
    }]}]}]}"""


def canonical(text: str) -> Any:
    """An official example in the canonical form: 64-bit integers as strings, lowercase ids."""
    wide = {
        "timeUnixNano",
        "observedTimeUnixNano",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "count",
        "intValue",
    }
    ids = {"traceId", "spanId", "parentSpanId"}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key in wide and isinstance(item, int):
                    out[key] = str(item)
                elif key == "bucketCounts":
                    out[key] = [str(c) for c in item]
                elif key in ids:
                    out[key] = item.lower()
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    document = walk(json.loads(text))
    if "resourceMetrics" in document:
        # The official histogram has 3 bucketCounts for 1 explicit bound, which OTLP forbids
        # (len(bucketCounts) == len(explicitBounds) + 1); give it the second bound it lacks.
        metric = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]
        metric["histogram"]["dataPoints"][0]["explicitBounds"] = [1, 2]
    return document


@pytest.mark.parametrize("signal", sorted(OFFICIAL))
def test_official_examples_are_valid_otlp(signal: str) -> None:
    message = validate(signal, OFFICIAL[signal], canonical=False)
    assert json_format.MessageToDict(message)  # parsed into a non-empty message


@pytest.mark.parametrize("signal", sorted(OFFICIAL))
def test_official_examples_in_canonical_form_pass_the_strict_check(signal: str) -> None:
    validate(signal, canonical(OFFICIAL[signal]))


@pytest.mark.parametrize("signal", sorted(OFFICIAL))
def test_strict_mode_refuses_the_examples_non_canonical_spellings(signal: str) -> None:
    with pytest.raises(OTLPValidationError, match=r"must be a decimal string|lowercase hex"):
        validate(signal, OFFICIAL[signal])


def test_the_official_histogram_breaks_the_bucket_rule_the_strict_check_enforces() -> None:
    numbers_as_strings = canonical(OFFICIAL_METRICS)
    point = numbers_as_strings["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]
    point["histogram"]["dataPoints"][0]["explicitBounds"] = [1]  # as published
    with pytest.raises(OTLPValidationError, match="3 bucketCounts for 1 explicitBounds"):
        validate("metrics", numbers_as_strings)


def test_hex_ids_are_decoded_as_hex_not_base64() -> None:
    message = validate("traces", canonical(OFFICIAL_TRACE))
    span = message.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")


def _log_body(**record: Any) -> dict[str, Any]:
    base = {"timeUnixNano": "1", "body": {"stringValue": "x"}}
    base.update(record)
    return {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [base]}]}]}


def _with(document: Any, path: list[Any], value: Any) -> Any:
    changed = copy.deepcopy(document)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


GOOD_TRACE = canonical(OFFICIAL_TRACE)
SPAN = ["resourceSpans", 0, "scopeSpans", 0, "spans", 0]
GOOD_METRICS = canonical(OFFICIAL_METRICS)
HISTOGRAM_POINT = [
    "resourceMetrics",
    0,
    "scopeMetrics",
    0,
    "metrics",
    2,
    "histogram",
    "dataPoints",
    0,
]

KNOWN_BAD: list[tuple[str, str, Any, str]] = [
    (
        "base64 trace id",
        "traces",
        _with(GOOD_TRACE, [*SPAN, "traceId"], "W47/95gDgQPSabYzgT/GDA=="),
        "hex characters",
    ),
    ("short span id", "traces", _with(GOOD_TRACE, [*SPAN, "spanId"], "eee19b7e"), "16"),
    (
        "uppercase id",
        "traces",
        _with(GOOD_TRACE, [*SPAN, "spanId"], "EEE19B7EC3C1B174"),
        "lowercase hex",
    ),
    ("all-zero trace id", "traces", _with(GOOD_TRACE, [*SPAN, "traceId"], "0" * 32), "all zeros"),
    (
        "enum by name",
        "traces",
        _with(GOOD_TRACE, [*SPAN, "kind"], "SPAN_KIND_SERVER"),
        "enums must be integers",
    ),
    ("unknown enum number", "traces", _with(GOOD_TRACE, [*SPAN, "kind"], 42), "not a SpanKind"),
    (
        "snake_case key",
        "traces",
        _with(GOOD_TRACE, [*SPAN, "start_time_unix_nano"], "1"),
        "JSON name 'startTimeUnixNano'",
    ),
    ("unknown key", "traces", _with(GOOD_TRACE, [*SPAN, "colour"], "red"), "unknown field"),
    (
        "non-decimal int64",
        "traces",
        _with(GOOD_TRACE, [*SPAN, "startTimeUnixNano"], "0x10"),
        "not decimal",
    ),
    (
        "bool as string",
        "logs",
        _log_body(attributes=[{"key": "k", "value": {"boolValue": "true"}}]),
        "true/false",
    ),
    (
        "two oneof members",
        "logs",
        _log_body(body={"stringValue": "a", "intValue": "1"}),
        "both set in oneof",
    ),
    (
        "double as text",
        "logs",
        _log_body(attributes=[{"key": "k", "value": {"doubleValue": "1.5"}}]),
        "NaN",
    ),
    (
        "severity as name",
        "logs",
        _log_body(severityNumber="SEVERITY_NUMBER_INFO"),
        "enums must be integers",
    ),
    (
        "kvlist as a list (early events example)",
        "logs",
        json.loads(EARLY_EVENTS_EXAMPLE),
        "expected an object",
    ),
    (
        "histogram bounds and counts",
        "metrics",
        _with(GOOD_METRICS, [*HISTOGRAM_POINT, "bucketCounts"], ["1", "2"]),
        "want \\+1",
    ),
    (
        "histogram counts not summing to count",
        "metrics",
        _with(GOOD_METRICS, [*HISTOGRAM_POINT, "count"], "4"),
        "not count",
    ),
    (
        "sum without temporality",
        "metrics",
        _with(
            GOOD_METRICS,
            [
                "resourceMetrics",
                0,
                "scopeMetrics",
                0,
                "metrics",
                0,
                "sum",
                "aggregationTemporality",
            ],
            0,
        ),
        "aggregationTemporality",
    ),
    ("empty envelope", "logs", {"resourceLogs": []}, "empty envelope"),
    (
        "envelope of empty scopes",
        "traces",
        {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": []}]}]},
        "empty envelope",
    ),
]


@pytest.mark.parametrize(
    ("signal", "body", "needle"),
    [case[1:] for case in KNOWN_BAD],
    ids=[case[0] for case in KNOWN_BAD],
)
def test_known_bad_bodies_are_refused_with_the_reason(signal: str, body: Any, needle: str) -> None:
    with pytest.raises(OTLPValidationError, match=needle):
        validate(signal, body)


def test_json_format_alone_would_accept_what_the_validator_refuses() -> None:
    """Why the walk exists: Parse takes a base64 id and a numeric int64 without complaint."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    lenient = _with(GOOD_TRACE, [*SPAN, "traceId"], "W47/95gDgQPSabYzgT/GDA==")
    lenient = _with(lenient, [*SPAN, "startTimeUnixNano"], 5)
    json_format.Parse(json.dumps(lenient), ExportTraceServiceRequest())
    with pytest.raises(OTLPValidationError):
        validate("traces", lenient)
