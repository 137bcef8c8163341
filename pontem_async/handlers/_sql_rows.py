"""A :class:`LogRecord` as a row of the ``error_logs`` table.

Where each column comes from (the first key present wins; the attribute names are OTel's
semantic conventions first, then the plain names people bind by hand):

=================  ================================================================================
column             source
=================  ================================================================================
created_at         the record's timestamp, UTC
level              the severity text (``ERROR``, ``FATAL``, ...)
message            the body
message_template   attribute ``message_template``, else the body with UUIDs, hex ids and numbers
                   masked (:func:`pontem_async.fingerprint.message_template`)
stack_trace        ``exception.stacktrace`` (set by ``log.exception``), ``code.stacktrace``
fingerprint        ``exception.fingerprint``; a log without exception gets the SHA-1 of its logger,
                   message template and service, so ``log.error("order 7 failed")`` groups too
service            resource ``service.name``
environment        resource ``deployment.environment.name``, ``deployment.environment``
release_version    resource ``service.version``
build_sha          resource ``vcs.ref.head.revision``, ``vcs.revision``, ``build.sha``,
                   ``build_sha``
route              ``http.route``, ``route``
function_name      ``code.function.name``, ``code.function``, ``function_name``, else the
                   innermost function of the stack trace
http_method        ``http.request.method``, ``http.method``, ``http_method``, ``method``
http_status        ``http.response.status_code``, ``http.status_code``, ``http_status``,
                   ``status_code``, ``status`` (kept only when it is an integer)
latency_ms         ``latency_ms``, ``duration_ms``
request_id         ``request_id``, ``http.request.id``, ``request.id``
session_id         ``session_id``, ``session.id``
tags               every other attribute, plus ``logger``, ``trace_id`` and ``span_id`` when set
=================  ================================================================================

Resource keys are also looked up among the record's attributes, so a service that binds
``deployment.environment`` per request still fills the column.

Values are made safe for every database on the consumer task: text is bounded, NUL characters
(which PostgreSQL refuses in text and JSONB) become U+FFFD, and tags become plain JSON (NaN and
infinities as null, unknown objects as their ``str``).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from pontem_async.fingerprint import message_template
from pontem_async.handlers._sql_schema import LONG_TEXT, SHORT_TEXT
from pontem_async.records import LogRecord

__all__ = ["ATTRIBUTE_SOURCES", "RESOURCE_SOURCES", "log_fingerprint", "to_row"]

ATTRIBUTE_SOURCES: Mapping[str, tuple[str, ...]] = {
    "stack_trace": ("exception.stacktrace", "code.stacktrace"),
    "fingerprint": ("exception.fingerprint",),
    "message_template": ("message_template",),
    "route": ("http.route", "route"),
    "function_name": ("code.function.name", "code.function", "function_name"),
    "http_method": ("http.request.method", "http.method", "http_method", "method"),
    "http_status": (
        "http.response.status_code",
        "http.status_code",
        "http_status",
        "status_code",
        "status",
    ),
    "latency_ms": ("latency_ms", "duration_ms"),
    "request_id": ("request_id", "http.request.id", "request.id"),
    "session_id": ("session_id", "session.id"),
}
"""Column -> the record attributes that fill it, first present wins."""

RESOURCE_SOURCES: Mapping[str, tuple[str, ...]] = {
    "service": ("service.name",),
    "environment": ("deployment.environment.name", "deployment.environment"),
    "release_version": ("service.version",),
    "build_sha": ("vcs.ref.head.revision", "vcs.revision", "build.sha", "build_sha"),
}
"""Column -> the resource keys (then attribute keys) that fill it."""

_LONG_COLUMNS = frozenset({"message", "message_template", "stack_trace"})
_FRAME = re.compile(r'^  File "[^"\n]*", line \d+, in (\S+)$', re.MULTILINE)
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def log_fingerprint(logger: str, template: str, service: str | None) -> str:
    """The fingerprint of an error log that carries no exception (40 hex digits)."""
    text = "\n".join(("log", logger, template, service or ""))
    return hashlib.sha1(text.encode("utf-8", "backslashreplace")).hexdigest()


def to_row(record: LogRecord) -> dict[str, Any]:
    """The row of ``record``: every column of :data:`~._sql_schema.COLUMNS`, None when unknown."""
    attributes = dict(record.attributes)
    resource = record.resource or {}
    row: dict[str, Any] = {
        "created_at": _EPOCH + datetime.timedelta(microseconds=record.timestamp // 1000),
        "level": record.severity_text,
        "message": _text(record.body, LONG_TEXT),
    }
    for column, keys in RESOURCE_SOURCES.items():
        value = _first(resource, keys, consume=None)
        if value is None:
            value = _first(attributes, keys, consume=attributes)
        row[column] = _text(value, SHORT_TEXT)
    for column, keys in ATTRIBUTE_SOURCES.items():
        if column == "http_status":
            row[column] = _first_int(attributes, keys)
        elif column == "latency_ms":
            row[column] = _first_float(attributes, keys)
        else:
            limit = LONG_TEXT if column in _LONG_COLUMNS else SHORT_TEXT
            row[column] = _text(_first(attributes, keys, consume=attributes), limit)
    if row["message_template"] is None:
        row["message_template"] = _text(message_template(_plain(record.body)), LONG_TEXT)
    if row["function_name"] is None and row["stack_trace"] is not None:
        frames = _FRAME.findall(row["stack_trace"])
        row["function_name"] = frames[-1] if frames else None
    if row["fingerprint"] is None:
        row["fingerprint"] = log_fingerprint(record.logger, row["message_template"], row["service"])
    for key, value in (
        ("logger", record.logger),
        ("trace_id", record.trace_id),
        ("span_id", record.span_id),
    ):
        if value and key not in attributes:
            attributes[key] = value
    row["tags"] = _json(attributes)
    return row


def _first(source: Mapping[str, Any], keys: tuple[str, ...], consume: dict[str, Any] | None) -> Any:
    """The value of the first of ``keys`` in ``source`` that is not None; taken out of
    ``consume`` (the future tags) when given."""
    for key in keys:
        value = source.get(key)
        if value is not None:
            if consume is not None:
                del consume[key]
            return value
    return None


def _first_int(attributes: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """An HTTP status: an int, or digits in a string; anything else stays in the tags."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) and -(2**31) <= value < 2**31:
            del attributes[key]
            return value
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
            del attributes[key]
            return int(value)
    return None


def _first_float(attributes: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = float(value)
        if math.isfinite(number):
            del attributes[key]
            return number
    return None


def _plain(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the row
        return f"<unprintable {type(value).__name__}>"


def _text(value: object, limit: int) -> str | None:
    """``value`` as bounded text without NUL characters; None stays None."""
    if value is None:
        return None
    text = _plain(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _json(value: Any) -> Any:
    """``value`` made of JSON types every database accepts (see the module docstring)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, Mapping):
        return {_json(_plain(k)): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return _json(_plain(value))
