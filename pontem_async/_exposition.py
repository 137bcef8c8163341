"""Prometheus exposition of metric snapshots: OpenMetrics 1.0 and the 0.0.4 text format.

A pure function of :class:`~pontem_async.records.MetricRecord` s, so it renders a registry's
snapshot, or records read back from a JSONL file, the same way.

How a stored metric becomes a Prometheus family (prometheus_client's rules, so migrated
dashboards keep their names):

- ``.`` becomes ``_`` (``model.inference`` -> ``model_inference``), in metric and label names;
- a counter's trailing ``_total`` and an info's trailing ``_info`` are taken off the family name
  (the samples put them back);
- a unit made of name characters (``ms``, ``By``, ``seconds``) is appended as ``_<unit>`` unless
  the name already ends with it, because OpenMetrics requires a family with a ``# UNIT`` to end
  with it; other units (``{request}``, ``m/s``, ``1``) are left out of the exposition;
- an enum is an OpenMetrics ``stateset`` (a gauge in 0.0.4): one sample per state, labelled
  ``<family>="<state>"``, value 1 for the current state and 0 for the others.

OpenMetrics forbids a histogram ``_sum`` next to negative buckets and a negative ``_sum``; such
series are written with their buckets only (summaries without ``_sum``). ``_created`` samples
(series start times) are written in OpenMetrics only, as prometheus_client does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from pontem_async._metric_values import exposed
from pontem_async.records import HistogramValue, MetricRecord, SummaryValue

__all__ = ["FORMATS", "ExpositionFormat", "family_name", "render", "sample_names"]

ExpositionFormat = Literal["openmetrics", "text"]
FORMATS: tuple[str, ...] = ("openmetrics", "text")
CONTENT_TYPES = {
    "openmetrics": "application/openmetrics-text; version=1.0.0; charset=utf-8",
    "text": "text/plain; version=0.0.4; charset=utf-8",
}
"""HTTP ``Content-Type`` of each format, for an endpoint serving :func:`render`."""

_UNIT_RE = re.compile(r"[a-zA-Z0-9_:]+")
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": (),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "info": ("_info",),
    "enum": (),
}
_INF = float("inf")


def exposed_unit(unit: str, metric_type: str) -> str:
    """The unit as written in the exposition, or '' when it is left out."""
    if metric_type in ("info", "enum") or unit == "1" or not _UNIT_RE.fullmatch(unit):
        return ""
    return unit


def family_name(name: str, metric_type: str, unit: str) -> str:
    """The Prometheus family name of a stored metric (see the module docstring)."""
    family = exposed(name)
    strip = {"counter": "_total", "info": "_info"}.get(metric_type)
    if strip and family.endswith(strip) and len(family) > len(strip):
        family = family[: -len(strip)]
    suffix = exposed_unit(unit, metric_type)
    if suffix and not family.endswith("_" + suffix):
        family = f"{family}_{suffix}"
    return family


def sample_names(name: str, metric_type: str, unit: str) -> frozenset[str]:
    """Every name the family and its samples take; two metrics sharing one would clash."""
    family = family_name(name, metric_type, unit)
    return frozenset([family, *(family + s for s in _SUFFIXES[metric_type])])


def go_float(value: float) -> str:
    """A number as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it, like
    prometheus_client (so ``le`` label values match theirs): exponent from 1e6 on."""
    if value != value:
        return "NaN"
    if value == _INF:
        return "+Inf"
    if value == -_INF:
        return "-Inf"
    if value.__class__ is int:
        return str(value)
    text = repr(float(value))
    if value > 0 and "e" not in text:
        whole, _, fraction = text.partition(".")
        if len(whole) > 6:
            digits = (whole + fraction).rstrip("0")
            mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
            return f"{mantissa}e+{len(whole) - 1:02d}"
    return text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{exposed(k)}="{_escape(v)}"' for k, v in pairs)
    return f"{{{body}}}" if body else ""


def _help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def render(records: Iterable[MetricRecord], format: ExpositionFormat = "openmetrics") -> str:
    """The exposition of ``records`` (one family per record) in ``format``.

    Raises:
        ValueError: ``format`` is not ``openmetrics`` or ``text``.
    """
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    om = format == "openmetrics"
    lines: list[str] = []
    for record in records:
        _family(lines, record, om)
    if om:
        lines.append("# EOF")
    return "\n".join(lines) + "\n" if lines else ""


def _family(out: list[str], record: MetricRecord, om: bool) -> None:
    mtype = record.type
    family = family_name(record.name, mtype, record.unit)
    header = family
    if not om and mtype == "counter":
        header = family + "_total"
    elif not om and mtype == "info":
        header = family + "_info"
    if record.description:
        out.append(f"# HELP {header} {_help(record.description, om)}")
    shown_type: str = mtype
    if mtype == "enum":
        shown_type = "stateset" if om else "gauge"
    elif mtype == "info" and not om:
        shown_type = "gauge"
    out.append(f"# TYPE {header} {shown_type}")
    unit = exposed_unit(record.unit, mtype)
    if om and unit:
        out.append(f"# UNIT {family} {unit}")
    for point in record.points:
        pairs = list(point.labels.items())
        created = f"{family}_created{_labels(pairs)} {go_float(point.start_time / 1e9)}"
        value = point.value
        if mtype == "counter":
            out.append(f"{family}_total{_labels(pairs)} {go_float(value)}")  # type: ignore[arg-type]
            if om:
                out.append(created)
        elif mtype == "gauge":
            out.append(f"{family}{_labels(pairs)} {go_float(value)}")  # type: ignore[arg-type]
        elif isinstance(value, HistogramValue):
            _histogram(out, family, pairs, value, om)
            if om:
                out.append(created)
        elif isinstance(value, SummaryValue):
            out.append(f"{family}_count{_labels(pairs)} {value.count}")
            if not om or value.sum >= 0:
                out.append(f"{family}_sum{_labels(pairs)} {go_float(value.sum)}")
            if om:
                out.append(created)
        elif mtype == "info" and isinstance(value, Mapping):
            out.append(f"{family}_info{_labels([*pairs, *value.items()])} 1")
        elif mtype == "enum":
            for state in record.states:
                flag = 1 if state == value else 0
                out.append(f"{family}{_labels([*pairs, (family, state)])} {flag}")


def _histogram(
    out: list[str], family: str, pairs: list[tuple[str, str]], value: HistogramValue, om: bool
) -> None:
    cumulative = 0
    for bound, count in zip((*value.bounds, _INF), value.bucket_counts, strict=True):
        cumulative += count
        out.append(f"{family}_bucket{_labels([*pairs, ('le', go_float(bound))])} {cumulative}")
    # OpenMetrics: no _sum beside negative buckets, no negative _sum, and _count needs _sum
    if not om or (value.sum >= 0 and not (value.bounds and value.bounds[0] < 0)):
        out.append(f"{family}_count{_labels(pairs)} {value.count}")
        out.append(f"{family}_sum{_labels(pairs)} {go_float(value.sum)}")
