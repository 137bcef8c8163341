"""Metric snapshots and numeric series to an OTLP ``ExportMetricsServiceRequest`` (JSON).

Mapping, by pontem metric type:

- ``counter`` -> ``sum``, cumulative (``aggregationTemporality`` 2), ``isMonotonic``;
- ``gauge`` -> ``gauge`` (no temporality, no start time: OTLP gauges have neither meaning);
- ``histogram`` -> ``histogram``, cumulative; ``bucketCounts`` has one more entry than
  ``explicitBounds`` and sums to ``count`` (a point breaking that shape is left out rather
  than sent invalid);
- ``summary`` -> ``summary`` (count, sum, ``quantileValues``);
- ``info`` -> a ``gauge`` of 1 whose attributes are the series' labels and the info values
  (Prometheus' info convention: OTLP has no info type);
- ``enum`` -> a ``gauge`` with one point per declared state, 1 for the current state and 0 for
  the others, the state in an attribute named after the metric (Prometheus' StateSet);
- a :class:`SeriesRecord` -> a ``gauge`` with one point per value, each at its own timestamp
  (the record's when it has none) and with its step as the attribute ``step``.

Every metric name appears once per resource in a request, its data points gathered from every
record of the batch (two snapshots of one counter are two points of one ``sum``); cumulative
series keep the ``startTimeUnixNano`` their snapshot carries, which the registry keeps stable
per series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pontem_async.encoding._otlp_values import attributes, double, resource
from pontem_async.records import (
    HistogramValue,
    MetricRecord,
    Record,
    SeriesRecord,
    SummaryValue,
)

__all__ = ["SCOPE_NAME", "metrics_request"]

SCOPE_NAME = "pontem_async"
"""Instrumentation scope of the metrics pontem-async exports."""
CUMULATIVE = 2
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_SHAPE = {
    "counter": "sum",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "info": "gauge",
    "enum": "gauge",
}

_Groups = dict[int, tuple[Mapping[str, Any] | None, dict[tuple[str, str], dict[str, Any]]]]


def _metric(
    groups: _Groups,
    res: Mapping[str, Any] | None,
    name: str,
    shape: str,
    unit: str,
    description: str,
) -> list[dict[str, Any]]:
    """The data point list of metric ``name`` under ``res``, creating the entry on first use."""
    group = groups.get(id(res))
    if group is None:
        group = groups[id(res)] = (res, {})
    metrics = group[1]
    entry = metrics.get((name, shape))
    if entry is None:
        data: dict[str, Any] = {"dataPoints": []}
        if shape in ("sum", "histogram"):
            data["aggregationTemporality"] = CUMULATIVE
        if shape == "sum":
            data["isMonotonic"] = True
        entry = {"name": name, shape: data}
        if unit:
            entry["unit"] = unit
        if description:
            entry["description"] = description
        metrics[(name, shape)] = entry
    points: list[dict[str, Any]] = entry[shape]["dataPoints"]
    return points


def _number(point: dict[str, Any], value: Any) -> None:
    """Set ``asInt`` (Python ints within int64) or ``asDouble`` (anything else numeric)."""
    if value.__class__ is int and _INT64_MIN <= value <= _INT64_MAX:
        point["asInt"] = str(value)
        return
    try:
        point["asDouble"] = double(float(value))
    except (TypeError, ValueError, OverflowError):
        point["asDouble"] = "NaN"


def _add_metric(groups: _Groups, record: MetricRecord) -> None:
    ts, name, mtype, unit, description, snapshot, res = record[:7]
    shape = _SHAPE.get(mtype)
    if shape is None or not snapshot:
        return
    now = str(ts)
    points = _metric(groups, res, name, shape, unit, description)
    for labels, start_time, value in snapshot:
        attrs = attributes(labels) if labels else []
        if mtype == "counter" or mtype == "gauge":
            point: dict[str, Any] = {"attributes": attrs, "timeUnixNano": now}
            if mtype == "counter":
                point["startTimeUnixNano"] = str(start_time)
            _number(point, value)
            points.append(point)
        elif mtype == "histogram" and isinstance(value, HistogramValue):
            counts = value.bucket_counts
            if len(counts) != len(value.bounds) + 1:
                continue  # malformed: never send a histogram OTLP would reject
            points.append(
                {
                    "attributes": attrs,
                    "startTimeUnixNano": str(start_time),
                    "timeUnixNano": now,
                    "count": str(sum(counts)),
                    "sum": double(value.sum),
                    "bucketCounts": [str(c) for c in counts],
                    "explicitBounds": [double(b) for b in value.bounds],
                }
            )
        elif mtype == "summary" and isinstance(value, SummaryValue):
            points.append(
                {
                    "attributes": attrs,
                    "startTimeUnixNano": str(start_time),
                    "timeUnixNano": now,
                    "count": str(value.count),
                    "sum": double(value.sum),
                    "quantileValues": [
                        {"quantile": double(q), "value": double(v)} for q, v in value.quantiles
                    ],
                }
            )
        elif mtype == "info" and isinstance(value, Mapping):
            merged = attrs + attributes(value)
            points.append({"attributes": merged, "timeUnixNano": now, "asInt": "1"})
        elif mtype == "enum":
            states = list(record.states)
            if value not in states:
                states.append(value)
            for state in states:
                state_attr = attributes({name: state})
                points.append(
                    {
                        "attributes": attrs + state_attr,
                        "timeUnixNano": now,
                        "asInt": "1" if state == value else "0",
                    }
                )
    if not points:  # every point was malformed: no empty metric entry
        del groups[id(res)][1][(name, shape)]


def _column(values: Any) -> list[Any]:
    """A column of a series record as a list (NumPy arrays through their ``tolist()``)."""
    if values is None:
        return []
    if isinstance(values, list):
        return values
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        converted = tolist()
        return converted if isinstance(converted, list) else [converted]
    return list(values)


def _add_series(groups: _Groups, record: SeriesRecord) -> None:
    ts, name, values, steps, stamps, labels, unit, res = record[:8]
    scale = record[8] if len(record) > 8 else "step"
    values = _column(values)
    if not values:
        return
    steps = _column(steps)
    stamps = _column(stamps) if stamps is not None else None
    base = attributes(labels) if labels else []
    if scale != "step":
        base = [*base, {"key": "step.scale", "value": {"stringValue": str(scale)}}]
    default_time = str(ts)
    points = _metric(groups, res, name, "gauge", unit, "")
    for index, value in enumerate(values):
        step = steps[index] if index < len(steps) else index
        step_attr = attributes({"step": step})
        when = stamps[index] if stamps is not None and index < len(stamps) else None
        point: dict[str, Any] = {
            "attributes": base + step_attr,
            "timeUnixNano": default_time if when is None else str(int(when)),
        }
        _number(point, value)
        points.append(point)


def metrics_request(records: Sequence[Record]) -> dict[str, Any] | None:
    """The ``ExportMetricsServiceRequest`` of metric and series records; None when they hold
    no data point (OTLP bodies are never empty)."""
    groups: _Groups = {}
    for record in records:
        if isinstance(record, MetricRecord):
            _add_metric(groups, record)
        elif isinstance(record, SeriesRecord):
            _add_series(groups, record)
    resource_metrics = []
    for res, metrics in groups.values():
        if not metrics:
            continue
        resource_metrics.append(
            {
                "resource": resource(res),
                "scopeMetrics": [
                    {"scope": {"name": SCOPE_NAME}, "metrics": list(metrics.values())}
                ],
            }
        )
    if not resource_metrics:
        return None
    return {"resourceMetrics": resource_metrics}
