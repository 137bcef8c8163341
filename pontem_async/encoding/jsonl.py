"""Records to JSONL: one UTF-8 JSON object per line, ``\\n``-terminated, written by orjson.

Log lines keep pontem's shape (``timestamp`` in float seconds, ``severityNumber``,
``severityText``, ``body``, ``attributes``, ``resource``) so pontem's readers keep working, plus
``kind`` and ``timeUnixNano`` (the exact integer nanoseconds: a float of seconds cannot hold
nanoseconds at today's epoch, and exact times keep lines of one burst in order).

Robustness, because a bad attribute must never cost the whole line:

- values orjson cannot encode fall back to ``str(value)`` (``repr`` if ``str`` raises);
- NaN and ±Infinity become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (the proto3
  JSON spelling) instead of orjson's ``null``, so the value survives and the JSON stays valid;
- integers beyond 64 bits and strings with lone surrogates are rewritten on a slow path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from pontem_async.records import (
    CallNode,
    EventRecord,
    FrozenNode,
    HistogramValue,
    LogRecord,
    MetricPoint,
    MetricRecord,
    ProfileRecord,
    Record,
    SummaryValue,
    severity_text,
)

__all__ = [
    "encode_batch",
    "encode_line",
    "frozen_to_dict",
    "node_to_dict",
    "record_to_dict",
    "register_kind",
    "safe_str",
]

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_ENCODERS: dict[str, Callable[[Any], dict[str, Any]]] = {}


def safe_str(value: object) -> str:
    """``str(value)``, else ``repr(value)``, else a placeholder: never raises."""
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def register_kind(kind: str, encoder: Callable[[Any], dict[str, Any]]) -> None:
    """Register the dict encoder of a record kind (used by the metric/profile/event modules)."""
    _ENCODERS[kind] = encoder


def _finite(value: float) -> Any:
    if value != value:
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return value


def sanitize(value: Any) -> Any:
    """Replace non-finite floats (any depth) by their proto3 JSON strings; copy only if needed.

    Subclasses count (``numpy.float64`` is a float, ``OrderedDict`` a dict), because orjson
    writes them like their base type.
    """
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            return _finite(value)
        return value
    if isinstance(value, dict):
        changed = None
        for key, item in value.items():
            new = sanitize(item)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        items = [sanitize(item) for item in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value


def _sanitize_attributes(attributes: Mapping[str, Any]) -> Any:
    """:func:`sanitize` for an attribute dict, with a fast exit when every value is plain."""
    for value in attributes.values():
        cls = value.__class__
        if not (cls is str or cls is int or cls is bool or value is None):
            return sanitize(attributes)
    return attributes


def _key(key: Any) -> str:
    """A dict key as orjson's OPT_NON_STR_KEYS spells it (``None`` -> ``null``)."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(_stringify_hard(key))


def _stringify_hard(value: Any) -> Any:
    """Slow path: make anything orjson rejects (huge ints, lone surrogates, odd keys) encodable,
    writing every other value exactly as the fast path would."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {_key(k): _stringify_hard(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stringify_hard(v) for v in value]
    return _stringify_hard(safe_str(value))


def _log_to_dict(record: LogRecord) -> dict[str, Any]:
    ts, severity, body, attributes, logger, resource, trace_id, span_id = record
    line: dict[str, Any] = {
        "kind": "log",
        "timestamp": ts / 1e9,
        "timeUnixNano": ts,
        "severityNumber": severity,
        "severityText": severity_text(severity),
        "body": body if body.__class__ is str else safe_str(body),
        "attributes": _sanitize_attributes(attributes) if attributes else {},
        "resource": resource if resource is not None else {},
    }
    if logger:
        line["logger"] = logger
    if trace_id is not None:
        line["traceId"] = trace_id
    if span_id is not None:
        line["spanId"] = span_id
    return line


register_kind("log", _log_to_dict)


def _point_to_dict(point: MetricPoint) -> dict[str, Any]:
    line: dict[str, Any] = {"labels": point.labels, "startTimeUnixNano": point.start_time}
    value = point.value
    if isinstance(value, HistogramValue):
        line.update(
            count=value.count,
            sum=_finite(value.sum),
            bounds=list(value.bounds),
            bucketCounts=list(value.bucket_counts),
        )
    elif isinstance(value, SummaryValue):
        line.update(
            count=value.count,
            sum=_finite(value.sum),
            quantiles=[{"quantile": q, "value": _finite(v)} for q, v in value.quantiles],
        )
    elif isinstance(value, float):
        line["value"] = _finite(value)
    else:
        line["value"] = value
    return line


def _metric_to_dict(record: MetricRecord) -> dict[str, Any]:
    ts, name, mtype, unit, description, points, resource, states = record
    line: dict[str, Any] = {
        "kind": "metric",
        "timestamp": ts / 1e9,
        "timeUnixNano": ts,
        "name": name,
        "type": mtype,
        "unit": unit,
        "description": description,
        "points": [_point_to_dict(point) for point in points],
        "resource": resource if resource is not None else {},
    }
    if states:
        line["states"] = list(states)
    return line


MAX_TREE_DEPTH = 100
"""Deepest call-tree level written nested. orjson refuses JSON nested deeper than 255 (two per
tree level), so the subtree below a node at this depth is summarised in its attributes
(``truncated_descendants``: how many calls it held) instead of failing the whole line."""


def node_to_dict(node: CallNode, depth: int = 0) -> dict[str, Any]:
    """A call-tree node as written under a profile line's ``root`` (children nested)."""
    attributes = sanitize(node.attributes) if node.attributes else {}
    if depth >= MAX_TREE_DEPTH and node.children:
        attributes = {**attributes, "truncated_descendants": sum(1 for _ in node.walk()) - 1}
        children: list[dict[str, Any]] = []
    else:
        children = [node_to_dict(child, depth + 1) for child in node.children]
    return {
        "name": node.name,
        "span_id": node.span_id,
        "parent_span_id": node.parent_span_id,
        "start_unix_nano": node.start_unix_nano,
        "duration_ns": node.duration_ns,
        "error": node.error,
        "attributes": attributes,
        "children": children,
    }


def frozen_to_dict(frozen: FrozenNode, depth: int = 0) -> dict[str, Any]:
    """:func:`node_to_dict` of a frozen node (how the profiler submits trees)."""
    name, span_id, parent_span_id, start, duration, error, attributes, children = frozen
    attributes = sanitize(attributes) if attributes else {}
    if depth >= MAX_TREE_DEPTH and children:
        descendants = 0
        stack = list(children)
        while stack:
            descendants += 1
            stack.extend(stack.pop()[7])
        attributes = {**attributes, "truncated_descendants": descendants}
        nested: list[dict[str, Any]] = []
    else:
        nested = [frozen_to_dict(child, depth + 1) for child in children]
    return {
        "name": name,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "start_unix_nano": start,
        "duration_ns": duration,
        "error": error,
        "attributes": attributes,
        "children": nested,
    }


def _profile_to_dict(record: ProfileRecord) -> dict[str, Any]:
    ts, trace_id, root, resource, unfinished = record
    return {
        "kind": "profile",
        "timestamp": ts / 1e9,
        "timeUnixNano": ts,
        "traceId": trace_id,
        "root": frozen_to_dict(root) if root.__class__ is tuple else node_to_dict(root),
        "unfinished": unfinished,
        "resource": resource if resource is not None else {},
    }


register_kind("metric", _metric_to_dict)
register_kind("profile", _profile_to_dict)


def _event_to_dict(record: EventRecord) -> dict[str, Any]:
    ts, type_, data, meta, run_id, resource = record
    return {
        "kind": "event",
        "timestamp": ts / 1e9,
        "timeUnixNano": ts,
        "type": type_,
        "data": sanitize(data) if data else {},
        "meta": sanitize(meta) if meta else {},
        "runId": run_id,
        "resource": resource if resource is not None else {},
    }


register_kind("event", _event_to_dict)


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSON object of one record, as written on its JSONL line."""
    encoder = _ENCODERS.get(record.kind)
    if encoder is None:  # a third-party kind without an encoder: keep its data anyway
        return {"kind": record.kind, "timeUnixNano": record.timestamp, "fields": list(record)}
    return encoder(record)


def encode_line(record: Record) -> bytes:
    """One record as a JSONL line (with the trailing newline). Never raises for bad values."""
    line = record_to_dict(record)
    try:
        return orjson.dumps(line, default=safe_str, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(
            _stringify_hard(line), default=safe_str, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE
        )


def encode_batch(batch: Iterable[Record]) -> bytes:
    """A batch of records as consecutive JSONL lines, ready for one write."""
    return b"".join([encode_line(record) for record in batch])
