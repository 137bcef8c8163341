"""Records to OTLP/HTTP JSON request bodies: pure functions, no I/O, no clocks.

One batch of records becomes up to three request bodies, one per signal:

- ``log`` and ``event`` records -> ``/v1/logs``, an ``ExportLogsServiceRequest``; an event is a
  log record with the attribute ``event.name`` = its type and its data as a ``kvlistValue`` body;
- ``metric`` and ``series`` records -> ``/v1/metrics``, an ``ExportMetricsServiceRequest`` (the
  mapping of each metric type is in ``_otlp_metrics``);
- ``profile`` records -> ``/v1/traces``, an ``ExportTraceServiceRequest``: one span per call
  node, with its parent's span id, and status ERROR plus an ``exception`` span event on every
  node that raised.

The JSON is proto3's canonical mapping as the OTLP specification requires it: lowerCamelCase
keys, 64-bit integers as decimal strings, enums as integers, trace and span ids as lowercase hex
(32 and 16 characters), non-finite doubles as ``"NaN"``/``"Infinity"``/``"-Infinity"``. Records
are grouped by resource (their ``service.name``, ``service.version`` and configured attributes)
and by instrumentation scope, keeping their order inside each group. A body is never an empty
envelope: a signal with nothing to say produces no body at all.

:func:`encode_bodies` also enforces a size limit: a body larger than ``max_bytes`` is split in
halves by records until each part fits; a single record that alone is too large is left out and
counted, so its caller can report the drop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pontem_async.encoding._otlp_metrics import metrics_request
from pontem_async.encoding._otlp_values import any_value, attributes, dumps, resource
from pontem_async.encoding.jsonl import safe_str
from pontem_async.records import (
    EventRecord,
    FrozenNode,
    LogRecord,
    ProfileRecord,
    Record,
    severity_text,
)

__all__ = [
    "PATHS",
    "SIGNAL_OF_KIND",
    "Body",
    "Signal",
    "encode_bodies",
    "encode_request",
    "logs_request",
    "metrics_request",
    "request_for",
    "split_by_signal",
    "traces_request",
]

Signal = Literal["logs", "metrics", "traces"]
PATHS: Mapping[Signal, str] = {
    "logs": "/v1/logs",
    "metrics": "/v1/metrics",
    "traces": "/v1/traces",
}
"""The OTLP/HTTP path of each signal, appended to the handler's base endpoint."""
SIGNAL_OF_KIND: Mapping[str, Signal] = {
    "log": "logs",
    "event": "logs",
    "metric": "metrics",
    "series": "metrics",
    "profile": "traces",
}
"""Which signal (and so which request) a record kind travels in."""

PROFILER_SCOPE = "pontem_async.profiler"
EVENT_SCOPE = "pontem_async.events"
SPAN_KIND_INTERNAL = 1
STATUS_ERROR = 2
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


def split_by_signal(batch: Iterable[Record]) -> dict[Signal, list[Record]]:
    """The records of ``batch`` per signal, in batch order; kinds OTLP does not carry are left
    out (a handler configured with those kinds counts them)."""
    out: dict[Signal, list[Record]] = {}
    for record in batch:
        signal = SIGNAL_OF_KIND.get(record.kind)
        if signal is not None:
            bucket = out.get(signal)
            if bucket is None:
                bucket = out[signal] = []
            bucket.append(record)
    return out


def _hex_id(value: Any, pattern: re.Pattern[str]) -> str | None:
    """A trace/span id in lowercase hex of the right length, or None when it is not one (an
    invalid id would make the collector reject the whole body)."""
    if value.__class__ is not str:
        return None
    if pattern.fullmatch(value):
        return value
    lowered = value.lower()
    return lowered if pattern.fullmatch(lowered) else None


# ---------------------------------------------------------------------------------- logs


def _log_record(record: LogRecord) -> dict[str, Any]:
    ts, severity, body, attrs, _logger, _res, trace_id, span_id = record[:8]
    now = str(ts)
    out: dict[str, Any] = {
        "timeUnixNano": now,
        "observedTimeUnixNano": now,
        "severityNumber": severity,
        "severityText": severity_text(severity),
        "body": {"stringValue": body if body.__class__ is str else safe_str(body)},
    }
    if attrs:
        out["attributes"] = attributes(attrs)
    if trace_id is not None:
        checked = _hex_id(trace_id, _TRACE_ID)
        if checked is not None:
            out["traceId"] = checked
    if span_id is not None:
        checked = _hex_id(span_id, _SPAN_ID)
        if checked is not None:
            out["spanId"] = checked
    return out


def _event_record(record: EventRecord) -> dict[str, Any]:
    ts, type_, data, meta, run_id, _res = record[:6]
    now = str(ts)
    attrs: list[dict[str, Any]] = [{"key": "event.name", "value": {"stringValue": str(type_)}}]
    if run_id is not None:
        attrs.append({"key": "pontem.run_id", "value": any_value(run_id)})
    if meta:
        attrs.append({"key": "event.meta", "value": any_value(meta)})
    return {
        "timeUnixNano": now,
        "observedTimeUnixNano": now,
        "severityNumber": 9,
        "severityText": "INFO",
        "body": any_value(data if data is not None else {}),
        "attributes": attrs,
    }


def logs_request(records: Sequence[Record]) -> dict[str, Any] | None:
    """The ``ExportLogsServiceRequest`` of log and event records (None when there are none).

    Log records are grouped by resource, then by logger name (the instrumentation scope);
    events go to the ``pontem_async.events`` scope.
    """
    groups: dict[int, tuple[Mapping[str, Any] | None, dict[str, list[dict[str, Any]]]]] = {}
    for record in records:
        if record.__class__ is LogRecord or isinstance(record, LogRecord):
            encoded, scope, res = _log_record(record), record[4], record[5]
        elif isinstance(record, EventRecord):
            encoded, scope, res = _event_record(record), EVENT_SCOPE, record[5]
        else:
            continue
        group = groups.get(id(res))
        if group is None:
            group = groups[id(res)] = (res, {})
        scoped = group[1].get(scope)
        if scoped is None:
            scoped = group[1][scope] = []
        scoped.append(encoded)
    if not groups:
        return None
    return {
        "resourceLogs": [
            {
                "resource": resource(res),
                "scopeLogs": [
                    {"scope": {"name": scope} if scope else {}, "logRecords": logs}
                    for scope, logs in scopes.items()
                ],
            }
            for res, scopes in groups.values()
        ]
    }


# ---------------------------------------------------------------------------------- traces


def _span(trace_id: str, node: FrozenNode) -> dict[str, Any] | None:
    name, span_id, parent_span_id, start, duration, error, attrs, _children = node
    span_id = _hex_id(span_id, _SPAN_ID)
    if span_id is None:
        return None
    end = start + (duration or 0)
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": SPAN_KIND_INTERNAL,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
    }
    if parent_span_id is not None:
        parent = _hex_id(parent_span_id, _SPAN_ID)
        if parent is not None:
            span["parentSpanId"] = parent
    if attrs:
        span["attributes"] = attributes(attrs)
    if error:
        kind = safe_str(error.get("type", ""))
        message = safe_str(error.get("message", ""))
        status = f"{kind}: {message}" if kind else message
        span["status"] = {"code": STATUS_ERROR, "message": status}
        event_attrs = {"exception.type": kind, "exception.message": message}
        fingerprint = error.get("fingerprint")
        if fingerprint:
            event_attrs["exception.fingerprint"] = safe_str(fingerprint)
        span["events"] = [
            {"timeUnixNano": str(end), "name": "exception", "attributes": attributes(event_attrs)}
        ]
    return span


def _spans(record: ProfileRecord) -> list[dict[str, Any]]:
    """Spans of every node of the record's tree, depth first in start order (root first)."""
    trace_id = _hex_id(record[1], _TRACE_ID)
    if trace_id is None:
        return []
    root = record.frozen_root
    spans = []
    stack = [root]
    while stack:
        node = stack.pop()
        span = _span(trace_id, node)
        if span is not None:
            spans.append(span)
        children = node[7]
        if children:
            stack.extend(reversed(children))
    unfinished = record[4]
    if spans and unfinished and spans[0]["spanId"] == root[1]:
        extra = {"key": "pontem.unfinished", "value": {"intValue": str(unfinished)}}
        spans[0]["attributes"] = [*spans[0].get("attributes", ()), extra]
    return spans


def traces_request(records: Sequence[Record]) -> dict[str, Any] | None:
    """The ``ExportTraceServiceRequest`` of profile records: every call node is one span of its
    root's trace (None when there is no span)."""
    groups: dict[int, tuple[Mapping[str, Any] | None, list[dict[str, Any]]]] = {}
    for record in records:
        if not isinstance(record, ProfileRecord):
            continue
        spans = _spans(record)
        if not spans:
            continue
        res = record[3]
        group = groups.get(id(res))
        if group is None:
            group = groups[id(res)] = (res, [])
        group[1].extend(spans)
    if not groups:
        return None
    return {
        "resourceSpans": [
            {
                "resource": resource(res),
                "scopeSpans": [{"scope": {"name": PROFILER_SCOPE}, "spans": spans}],
            }
            for res, spans in groups.values()
        ]
    }


# ---------------------------------------------------------------------------------- bodies

_REQUESTS: Mapping[Signal, Callable[[Sequence[Record]], dict[str, Any] | None]] = {
    "logs": logs_request,
    "metrics": metrics_request,
    "traces": traces_request,
}


def request_for(signal: Signal, records: Sequence[Record]) -> dict[str, Any] | None:
    """The request object of ``signal`` for ``records`` (None when it would be empty)."""
    return _REQUESTS[signal](records)


def encode_request(signal: Signal, records: Sequence[Record]) -> bytes | None:
    """The JSON body of ``signal`` for ``records``, or None when there is nothing to send."""
    document = _REQUESTS[signal](records)
    return None if document is None else dumps(document)


@dataclass(frozen=True)
class Body:
    """One request body ready to send: the JSON bytes and how many records it carries."""

    signal: Signal
    data: bytes
    records: int


def encode_bodies(
    signal: Signal, records: Sequence[Record], max_bytes: int
) -> tuple[list[Body], list[int]]:
    """The bodies of ``signal`` for ``records``, each at most ``max_bytes`` long.

    Returns:
        The bodies in record order, and the sizes of the single records left out because
        each alone encodes to more than ``max_bytes`` (one entry per record).
    """
    bodies: list[Body] = []
    too_large: list[int] = []
    pending: list[Sequence[Record]] = [records]
    while pending:
        part = pending.pop()
        data = encode_request(signal, part)
        if data is None:
            continue
        if len(data) <= max_bytes:
            bodies.append(Body(signal, data, len(part)))
        elif len(part) == 1:
            too_large.append(len(data))
        else:
            middle = len(part) // 2
            pending.append(part[middle:])  # popped last: the first half is sent first
            pending.append(part[:middle])
    return bodies, too_large
