"""A strict validator of OTLP/HTTP JSON bodies, for the tests.

``google.protobuf.json_format.Parse`` alone is too lenient to prove a body right: it accepts
numbers for 64-bit integers, enum names, snake_case keys, and it decodes trace/span ids as
base64 (so a hex id "parses" into the wrong bytes). This module first walks the body against the
``opentelemetry-proto`` message descriptors and checks what OTLP requires:

- every key is the field's ``json_name`` (lowerCamelCase; the proto name is refused), no
  unknown keys, at most one member of a ``oneof``;
- 64-bit integers are decimal strings (``canonical``) — the spec's examples use numbers, which
  receivers accept, so ``canonical=False`` allows both;
- 32-bit integers are JSON integers, enums are integers (never names), bools are bools;
- doubles are numbers or ``"NaN"``/``"Infinity"``/``"-Infinity"``;
- ``traceId`` is 32 and ``spanId``/``parentSpanId`` 16 hex characters (lowercase when
  ``canonical``); other bytes are base64;
- histograms: ``len(bucketCounts) == len(explicitBounds) + 1`` and the counts sum to ``count``;
  sums and histograms name their temporality;
- a body carries at least one log record, data point or span (``require_data``);

then converts the hex ids to base64 and runs ``json_format.Parse`` on the result, returning
the parsed message so tests can compare decoded values.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["REQUESTS", "OTLPValidationError", "decode_body", "validate"]

REQUESTS: dict[str, type[Message]] = {
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "traces": ExportTraceServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/traces": ExportTraceServiceRequest,
}

_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SINT64}
_UINT64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SINT32}
_UINT32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
_FLOATS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_HEX_IDS = {"trace_id": 32, "span_id": 16, "parent_span_id": 16}
_NON_FINITE = {"NaN", "Infinity", "-Infinity"}
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")


class OTLPValidationError(ValueError):
    """The body breaks a rule; the message starts with the JSON path of the offending value."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path or '$'}: {message}")


def decode_body(data: bytes, content_encoding: str | None = None) -> Any:
    """The JSON document of a request body, gunzipped when it says so (aiohttp's server
    already inflates what it reads, so only bytes that still look gzipped are)."""
    if content_encoding == "gzip" and data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return json.loads(data)


def _int(value: Any, path: str, bits: int, signed: bool, canonical: bool) -> int:
    if bits == 64:
        if isinstance(value, str):
            if not _DECIMAL.fullmatch(value):
                raise OTLPValidationError(path, f"64-bit integer string is not decimal: {value!r}")
            number = int(value)
        elif canonical:
            raise OTLPValidationError(path, f"64-bit integer must be a decimal string: {value!r}")
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise OTLPValidationError(path, f"expected a 64-bit integer, got {value!r}")
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OTLPValidationError(path, f"32-bit integer must be a JSON integer: {value!r}")
        number = value
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not low <= number <= high:
        raise OTLPValidationError(path, f"{number} is out of range for a {bits}-bit integer")
    return number


def _scalar(field: FieldDescriptor, value: Any, path: str, canonical: bool) -> Any:
    """Check one scalar; returns the value to hand to json_format (hex ids -> base64)."""
    kind = field.type
    if kind in _INT64 or kind in _UINT64:
        _int(value, path, 64, kind in _INT64, canonical)
    elif kind in _INT32 or kind in _UINT32:
        _int(value, path, 32, kind in _INT32, canonical)
    elif kind in _FLOATS:
        if isinstance(value, str):
            if value not in _NON_FINITE:
                raise OTLPValidationError(path, f"a double string must be NaN/±Infinity: {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise OTLPValidationError(path, f"expected a number, got {value!r}")
    elif kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise OTLPValidationError(path, f"expected true/false, got {value!r}")
    elif kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise OTLPValidationError(path, f"expected a string, got {value!r}")
    elif kind == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OTLPValidationError(path, f"enums must be integers, got {value!r}")
        if field.enum_type.values_by_number.get(value) is None:
            raise OTLPValidationError(path, f"{value} is not a {field.enum_type.name} value")
    elif kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise OTLPValidationError(path, f"expected a string, got {value!r}")
        length = _HEX_IDS.get(field.name)
        if length is None:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error:
                raise OTLPValidationError(path, f"bytes must be base64: {value!r}") from None
            return value
        if value == "" and not canonical:
            return value
        hex_chars = "0123456789abcdef" if canonical else "0123456789abcdefABCDEF"
        if len(value) != length or any(ch not in hex_chars for ch in value):
            case = "lowercase " if canonical else ""
            raise OTLPValidationError(
                path, f"{field.name} must be {length} {case}hex characters, got {value!r}"
            )
        if bytes.fromhex(value) == bytes(length // 2):
            raise OTLPValidationError(path, f"{field.name} must not be all zeros")
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    return value


def _message(desc: Descriptor, value: Any, path: str, canonical: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise OTLPValidationError(path, f"expected an object for {desc.name}, got {value!r}")
    by_json = {f.json_name: f for f in desc.fields}
    by_name = {f.name: f for f in desc.fields}
    out: dict[str, Any] = {}
    oneofs: dict[str, str] = {}
    for key, item in value.items():
        here = f"{path}.{key}"
        field = by_json.get(key)
        if field is None:
            if key in by_name:
                raise OTLPValidationError(
                    here, f"key must be the JSON name {by_name[key].json_name!r}, not {key!r}"
                )
            raise OTLPValidationError(here, f"unknown field of {desc.name}")
        if field.containing_oneof is not None:
            group = field.containing_oneof.name
            if group in oneofs:
                raise OTLPValidationError(
                    here, f"{key!r} and {oneofs[group]!r} are both set in oneof {group!r}"
                )
            oneofs[group] = key
        if item is None:
            if canonical:
                raise OTLPValidationError(here, "null is not written by a canonical encoder")
            continue
        if field.is_repeated:
            if not isinstance(item, list):
                raise OTLPValidationError(here, f"repeated field must be a list, got {item!r}")
            out[key] = [_value(field, v, f"{here}[{i}]", canonical) for i, v in enumerate(item)]
        else:
            out[key] = _value(field, item, here, canonical)
    if canonical:
        _semantics(desc, out, path)
    return out


def _value(field: FieldDescriptor, value: Any, path: str, canonical: bool) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(field.message_type, value, path, canonical)
    return _scalar(field, value, path, canonical)


def _semantics(desc: Descriptor, value: dict[str, Any], path: str) -> None:
    """The rules OTLP adds on top of the schema, for the messages pontem-async writes."""
    if desc.name == "HistogramDataPoint" and "bucketCounts" in value:
        counts = [int(c) for c in value["bucketCounts"]]
        bounds = value.get("explicitBounds", [])
        if len(counts) != len(bounds) + 1:
            raise OTLPValidationError(
                path, f"{len(counts)} bucketCounts for {len(bounds)} explicitBounds (want +1)"
            )
        if sum(counts) != int(value.get("count", "0")):
            raise OTLPValidationError(path, f"bucketCounts sum to {sum(counts)}, not count")
    if desc.name in ("Sum", "Histogram") and not value.get("aggregationTemporality"):
        raise OTLPValidationError(path, f"{desc.name} without aggregationTemporality")


def _has_data(message: Message) -> bool:
    if isinstance(message, ExportLogsServiceRequest):
        return any(sl.log_records for rl in message.resource_logs for sl in rl.scope_logs)
    if isinstance(message, ExportTraceServiceRequest):
        return any(ss.spans for rs in message.resource_spans for ss in rs.scope_spans)
    for rm in message.resource_metrics:  # type: ignore[attr-defined]
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None and getattr(metric, kind).data_points:
                    return True
    return False


def validate(
    signal: str, body: Any, *, canonical: bool = True, require_data: bool = True
) -> Message:
    """Check an OTLP/JSON body (bytes, str or parsed JSON) for ``signal`` (``logs``,
    ``metrics``, ``traces`` or their ``/v1/...`` path) and return the parsed message.

    Raises:
        OTLPValidationError: naming the JSON path of the first value that breaks a rule.
    """
    cls = REQUESTS[signal]
    document = json.loads(body) if isinstance(body, bytes | str) else body
    converted = _message(cls.DESCRIPTOR, document, "$", canonical)
    message = cls()
    try:
        json_format.Parse(json.dumps(converted), message)
    except json_format.ParseError as exc:
        raise OTLPValidationError("$", f"json_format.Parse refused it: {exc}") from None
    if require_data and not _has_data(message):
        raise OTLPValidationError("$", "an empty envelope: no log record, data point or span")
    return message
