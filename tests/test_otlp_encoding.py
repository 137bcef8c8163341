"""OTLP/JSON encoding (``pontem_async.encoding.otlp``): every body passes the strict validator,
and the values a collector decodes are the values the records carried."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otlp_validate import validate

from pontem_async.encoding.otlp import (
    encode_bodies,
    encode_request,
    request_for,
    split_by_signal,
)
from pontem_async.records import (
    CallNode,
    EventRecord,
    HistogramValue,
    LogRecord,
    MetricPoint,
    MetricRecord,
    ProfileRecord,
    SeriesRecord,
    SummaryValue,
)

RESOURCE = {"service.name": "checkout", "service.version": "1.2.0", "deployment.environment": "t"}
TRACE = "0af7651916cd43dd8448eb211c80319c"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def body(signal: str, records: list[Any]) -> dict[str, Any]:
    data = encode_request(signal, records)  # type: ignore[arg-type]
    assert data is not None
    validate(signal, data)
    document: dict[str, Any] = json.loads(data)
    return document


def decode(value: Mapping[str, Any]) -> Any:
    """An AnyValue back to Python, as a collector reads it."""
    if not value:
        return None
    ((kind, item),) = value.items()
    if kind == "intValue":
        return int(item)
    if kind == "doubleValue":
        return float(item)  # float("NaN") / float("Infinity") read the proto3 strings
    if kind == "arrayValue":
        return [decode(v) for v in item.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: decode(kv["value"]) for kv in item.get("values", [])}
    if kind == "bytesValue":
        return base64.b64decode(item)
    return item


def attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: decode(kv["value"]) for kv in items}


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (JSON cannot tell NaNs apart anyway)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


# ---------------------------------------------------------------------------------- logs

scalars = (
    st.text(max_size=20)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.none()
    | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def expected(value: Any) -> Any:
    """What a collector must decode for a Python attribute value."""
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expected(v) for v in value]
    return value


@FAST
@given(
    attributes=st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=6),
    message=st.text(max_size=40),
    severity=st.sampled_from([1, 5, 9, 13, 17, 21]),
    ts=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_log_records_round_trip_through_strictly_valid_otlp(
    attributes: dict[str, Any], message: str, severity: int, ts: int
) -> None:
    record = LogRecord(
        ts, severity, message, attributes, "app.db", RESOURCE, TRACE, "b7ad6b7169203331"
    )
    document = body("logs", [record])
    (resource_logs,) = document["resourceLogs"]
    assert attrs(resource_logs["resource"]["attributes"]) == RESOURCE
    (scope_logs,) = resource_logs["scopeLogs"]
    assert scope_logs["scope"] == {"name": "app.db"}
    (log,) = scope_logs["logRecords"]
    assert log["timeUnixNano"] == str(ts)
    assert log["severityNumber"] == severity
    assert log["body"] == {"stringValue": message}
    assert (log["traceId"], log["spanId"]) == (TRACE, "b7ad6b7169203331")
    assert same(attrs(log.get("attributes", [])), expected(attributes))


def test_odd_values_are_kept_as_text_and_ints_beyond_int64_as_their_digits() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    record = LogRecord(
        1,
        9,
        "m",
        {
            "big": 2**70,
            "odd": Odd(),
            "tuple": (1, 2),
            "np": np.int64(7),
            "arr": np.array([1.5, 2.5]),
            3: "int key",
        },
        "",
    )
    log = body("logs", [record])["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert attrs(log["attributes"]) == {
        "big": str(2**70),
        "odd": "odd!",
        "tuple": [1, 2],
        "np": 7,
        "arr": [1.5, 2.5],
        "3": "int key",
    }


def test_invalid_trace_ids_are_left_out_instead_of_spoiling_the_body() -> None:
    record = LogRecord(1, 9, "m", {}, "", None, "not-a-trace-id", "B7AD6B7169203331")
    log = body("logs", [record])["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert "traceId" not in log
    assert log["spanId"] == "b7ad6b7169203331"


def test_records_are_grouped_by_resource_and_scope_in_order() -> None:
    other = {"service.name": "other"}
    records = [
        LogRecord(1, 9, "a", {}, "x", RESOURCE),
        LogRecord(2, 9, "b", {}, "y", RESOURCE),
        LogRecord(3, 9, "c", {}, "x", other),
        LogRecord(4, 9, "d", {}, "x", RESOURCE),
    ]
    document = body("logs", records)
    layout = [
        (
            attrs(rl["resource"]["attributes"])["service.name"],
            sl["scope"]["name"],
            [r["body"]["stringValue"] for r in sl["logRecords"]],
        )
        for rl in document["resourceLogs"]
        for sl in rl["scopeLogs"]
    ]
    assert layout == [
        ("checkout", "x", ["a", "d"]),
        ("checkout", "y", ["b"]),
        ("other", "x", ["c"]),
    ]


def test_events_become_log_records_named_by_event_name() -> None:
    record = EventRecord(5, "exposure", {"seq": 1, "exptime": 30.5}, {"by": "ada"}, "001", RESOURCE)
    log = body("logs", [record])["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert attrs(log["attributes"]) == {
        "event.name": "exposure",
        "pontem.run_id": "001",
        "event.meta": {"by": "ada"},
    }
    assert decode(log["body"]) == {"seq": 1, "exptime": 30.5}
    assert log["timeUnixNano"] == "5"


# ---------------------------------------------------------------------------------- metrics

labels = st.dictionaries(st.sampled_from(["route", "code", "env"]), st.text(max_size=4), max_size=2)


@FAST
@given(
    series=st.lists(
        st.tuples(labels, st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=5
    ),
    snapshots=st.integers(min_value=1, max_value=3),
)
def test_counters_are_cumulative_monotonic_sums_with_stable_start_times(
    series: list[tuple[dict[str, str], float]], snapshots: int
) -> None:
    starts = [1000 + i for i in range(len(series))]
    records = [
        MetricRecord(
            10_000 + n,
            "requests",
            "counter",
            "1",
            "served",
            tuple(
                MetricPoint(lab, start, value)
                for (lab, value), start in zip(series, starts, strict=True)
            ),
            RESOURCE,
        )
        for n in range(snapshots)
    ]
    metrics = body("metrics", records)["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    (metric,) = metrics  # one entry per name, every snapshot's series as its data points
    assert (metric["name"], metric["unit"], metric["description"]) == ("requests", "1", "served")
    data = metric["sum"]
    assert (data["aggregationTemporality"], data["isMonotonic"]) == (2, True)
    points = data["dataPoints"]
    assert len(points) == len(series) * snapshots
    for n in range(snapshots):
        for i, (lab, value) in enumerate(series):
            point = points[n * len(series) + i]
            assert point["startTimeUnixNano"] == str(starts[i])
            assert point["timeUnixNano"] == str(10_000 + n)
            assert attrs(point["attributes"]) == lab
            assert same(float(point["asDouble"]), value)


@st.composite
def histograms(draw: st.DrawFn) -> HistogramValue:
    bounds = sorted(set(draw(st.lists(st.floats(-1e6, 1e6), max_size=6))))
    counts = draw(
        st.lists(st.integers(0, 2**40), min_size=len(bounds) + 1, max_size=len(bounds) + 1)
    )
    return HistogramValue(
        sum(counts), draw(st.floats(allow_nan=False)), tuple(bounds), tuple(counts)
    )


@FAST
@given(values=st.lists(histograms(), min_size=1, max_size=4))
def test_histograms_have_one_more_bucket_than_bounds_and_counts_summing_to_count(
    values: list[HistogramValue],
) -> None:
    points = tuple(MetricPoint({"n": str(i)}, 7, v) for i, v in enumerate(values))
    metric = body("metrics", [MetricRecord(9, "latency", "histogram", "ms", "", points)])[
        "resourceMetrics"
    ][0]["scopeMetrics"][0]["metrics"][0]
    assert metric["histogram"]["aggregationTemporality"] == 2
    for point, value in zip(metric["histogram"]["dataPoints"], values, strict=True):
        assert [int(c) for c in point["bucketCounts"]] == list(value.bucket_counts)
        assert point["explicitBounds"] == list(value.bounds)
        assert int(point["count"]) == value.count
        assert point["startTimeUnixNano"] == "7"


def test_a_malformed_histogram_point_is_left_out_not_sent_invalid() -> None:
    bad = HistogramValue(3, 1.0, (1.0, 2.0), (1, 2))  # 2 counts for 2 bounds
    good = HistogramValue(1, 1.0, (1.0,), (1, 0))
    points = (MetricPoint({"k": "bad"}, 1, bad), MetricPoint({"k": "good"}, 1, good))
    metric = body("metrics", [MetricRecord(9, "h", "histogram", "", "", points)])[
        "resourceMetrics"
    ][0]["scopeMetrics"][0]["metrics"][0]
    assert [attrs(p["attributes"]) for p in metric["histogram"]["dataPoints"]] == [{"k": "good"}]
    only_bad = MetricRecord(9, "h", "histogram", "", "", (MetricPoint({}, 1, bad),))
    assert encode_request("metrics", [only_bad]) is None


def test_gauges_summaries_infos_and_enums() -> None:
    records = [
        MetricRecord(5, "depth", "gauge", "", "", (MetricPoint({}, 1, -math.inf),)),
        MetricRecord(
            5,
            "size",
            "summary",
            "By",
            "",
            (MetricPoint({}, 2, SummaryValue(3, 9.0, ((0.5, 2.0), (0.99, math.nan)))),),
        ),
        MetricRecord(
            5, "build", "info", "", "", (MetricPoint({"host": "a"}, 3, {"version": "1.2"}),)
        ),
        MetricRecord(
            5, "phase", "enum", "", "", (MetricPoint({}, 4, "running"),), None, ("idle", "running")
        ),
    ]
    metrics = body("metrics", records)["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    gauge, summary, info, enum = metrics
    assert gauge == {
        "name": "depth",
        "gauge": {"dataPoints": [{"attributes": [], "timeUnixNano": "5", "asDouble": "-Infinity"}]},
    }
    (point,) = summary["summary"]["dataPoints"]
    assert (point["count"], point["sum"], point["startTimeUnixNano"]) == ("3", 9.0, "2")
    assert point["quantileValues"] == [
        {"quantile": 0.5, "value": 2.0},
        {"quantile": 0.99, "value": "NaN"},
    ]
    (point,) = info["gauge"]["dataPoints"]
    assert (attrs(point["attributes"]), point["asInt"]) == ({"host": "a", "version": "1.2"}, "1")
    states = [(attrs(p["attributes"]), p["asInt"]) for p in enum["gauge"]["dataPoints"]]
    assert states == [({"phase": "idle"}, "0"), ({"phase": "running"}, "1")]


def test_series_points_carry_their_own_time_and_step() -> None:
    listed = SeriesRecord(
        100, "loss", [0.5, 0.25, 2], [10, 11, 12], None, {"env": "0"}, "", RESOURCE
    )
    arrays = SeriesRecord(
        200,
        "loss",
        np.array([1.5, np.nan]),
        np.arange(2),
        np.array([150, 160]),
        {"env": "1"},
        "",
        RESOURCE,
    )
    (metric,) = body("metrics", [listed, arrays])["resourceMetrics"][0]["scopeMetrics"][0][
        "metrics"
    ]
    points = metric["gauge"]["dataPoints"]
    got = [
        (attrs(p["attributes"]), p["timeUnixNano"], p.get("asDouble", p.get("asInt")))
        for p in points
    ]
    assert got == [
        ({"env": "0", "step": 10}, "100", 0.5),
        ({"env": "0", "step": 11}, "100", 0.25),
        ({"env": "0", "step": 12}, "100", "2"),
        ({"env": "1", "step": 0}, "150", 1.5),
        ({"env": "1", "step": 1}, "160", "NaN"),
    ]


def test_list_series_are_encoded_without_importing_numpy() -> None:
    code = (
        "import sys\n"
        "from pontem_async.encoding.otlp import encode_request\n"
        "from pontem_async.records import SeriesRecord\n"
        "assert encode_request('metrics', [SeriesRecord(1, 'x', [1.0], [0])])\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_records_without_data_make_no_body() -> None:
    empty = [MetricRecord(1, "m", "counter", "", "", ()), SeriesRecord(1, "s", [], [])]
    assert encode_request("metrics", empty) is None
    assert encode_request("logs", []) is None
    assert encode_bodies("metrics", empty, 1000) == ([], [])


# ---------------------------------------------------------------------------------- traces

span_ids = st.integers(min_value=1, max_value=2**64 - 1).map(lambda n: f"{n:016x}")


@st.composite
def call_trees(draw: st.DrawFn) -> CallNode:
    # up to 1 + 2 + 4 + 8 nodes: depths 0 to 3, at most two children each
    ids = iter(draw(st.lists(span_ids, min_size=15, max_size=15, unique=True)))

    def node(parent: CallNode | None, depth: int) -> CallNode:
        start = draw(st.integers(0, 2**62))
        made = CallNode(f"svc:n{depth}", next(ids), parent.span_id if parent else None, start)
        made.duration_ns = draw(st.integers(0, 10**9))
        if draw(st.booleans()):
            made.error = {
                "type": "ValueError",
                "message": draw(st.text(max_size=10)),
                "fingerprint": "f1",
            }
        if depth < 3:
            made.children = [node(made, depth + 1) for _ in range(draw(st.integers(0, 2)))]
        return made

    return node(None, 0)


@FAST
@given(root=call_trees())
def test_every_call_node_becomes_one_span_of_its_roots_trace(root: CallNode) -> None:
    record = ProfileRecord(root.start_unix_nano, TRACE, root, RESOURCE)
    (scope_spans,) = body("traces", [record])["resourceSpans"][0]["scopeSpans"]
    spans = scope_spans["spans"]
    nodes = list(root.walk())
    assert [s["spanId"] for s in spans] == [n.span_id for n in nodes]
    for span, node in zip(spans, nodes, strict=True):
        assert span["traceId"] == TRACE
        assert span.get("parentSpanId") == node.parent_span_id
        assert span["name"] == node.name
        assert int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"]) == node.duration_ns
        if node.error is None:
            assert "status" not in span
            assert "events" not in span
        else:
            assert span["status"] == {"code": 2, "message": f"ValueError: {node.error['message']}"}
            (event,) = span["events"]
            assert event["name"] == "exception"
            assert attrs(event["attributes"]) == {
                "exception.type": "ValueError",
                "exception.message": node.error["message"],
                "exception.fingerprint": "f1",
            }


def test_unfinished_count_and_node_attributes_land_on_the_spans() -> None:
    root = CallNode("svc:root", "00000000000000aa", None, 10, attributes={"route": "/a"})
    root.duration_ns = 5
    record = ProfileRecord(10, TRACE, root, None, 2)
    (span,) = body("traces", [record])["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert attrs(span["attributes"]) == {"route": "/a", "pontem.unfinished": 2}
    assert span["kind"] == 1


# ---------------------------------------------------------------------------------- bodies


def test_split_by_signal_keeps_order_per_signal() -> None:
    log1, log2 = LogRecord(1, 9, "a", {}), LogRecord(2, 9, "b", {})
    event = EventRecord(3, "e", {})
    metric = MetricRecord(4, "m", "gauge", "", "", (MetricPoint({}, 0, 1.0),))
    assert split_by_signal([log1, metric, event, log2]) == {
        "logs": [log1, event, log2],
        "metrics": [metric],
    }


@FAST
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=40),
    limit=st.integers(min_value=400, max_value=5000),
)
def test_bodies_over_the_limit_are_split_and_single_oversized_records_reported(
    sizes: list[int], limit: int
) -> None:
    records = [LogRecord(i, 9, "x" * size, {"i": i}) for i, size in enumerate(sizes)]
    bodies, too_large = encode_bodies("logs", records, limit)
    assert all(len(b.data) <= limit for b in bodies)
    sent = [
        r["attributes"][0]["value"]["intValue"]
        for b in bodies
        for r in json.loads(b.data)["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    ]
    alone = {i: len(encode_request("logs", [r]) or b"") for i, r in enumerate(records)}
    assert sent == [str(i) for i in range(len(records)) if alone[i] <= limit]
    assert sorted(too_large) == sorted(n for n in alone.values() if n > limit)
    assert sum(b.records for b in bodies) == len(sent)
    for b in bodies:
        validate("logs", b.data)


def test_request_for_matches_encode_request() -> None:
    record = LogRecord(1, 9, "m", {"k": "v"})
    document = request_for("logs", [record])
    assert json.loads(encode_request("logs", [record]) or b"") == document


def test_lone_surrogates_do_not_break_the_body() -> None:
    record = LogRecord(1, 9, "bad \ud800 text", {"k": "\udfff"})
    log = body("logs", [record])["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert log["body"]["stringValue"] == "bad \\ud800 text"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_attribute_doubles_are_proto3_strings(value: float) -> None:
    record = LogRecord(1, 9, "m", {"v": value})
    log = body("logs", [record])["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert log["attributes"][0]["value"]["doubleValue"] == {
        math.inf: "Infinity",
        -math.inf: "-Infinity",
    }.get(value, "NaN")
