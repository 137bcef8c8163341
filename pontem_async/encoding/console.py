"""Records as human-readable console lines: ``time LEVEL body key=value ...``.

One line per record, whatever the body contains (newlines are escaped), so ``grep`` and
``tail -f`` stay useful. Colour (ANSI) only when asked; the caller decides when a TTY allows it
(:func:`use_color` is the one rule for that).

Two inputs, one look: :func:`render_record` renders a live :class:`Record` (the console
handler), :func:`render_line` renders the decoded JSON object of a JSONL line (``pontem-async
tail``). Both go through the same ``_render_log`` / ``_render_other`` so a record looks the same
on the console while it is logged and later when its file is read back.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

import orjson

from pontem_async.encoding.jsonl import record_to_dict, sanitize
from pontem_async.records import Level, LogRecord, Record, severity_text

__all__ = [
    "format_time",
    "line_kind",
    "line_severity",
    "render_batch",
    "render_line",
    "render_record",
    "use_color",
]

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_KIND_COLOR = "\x1b[35m"
_LEVEL_COLORS = {
    "TRACE": "\x1b[90m",
    "DEBUG": "\x1b[36m",
    "INFO": "\x1b[32m",
    "WARN": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "FATAL": "\x1b[1;41;97m",
}
_SKIP_IN_LINE = frozenset({"exception.stacktrace"})
_NOT_PAIRS = frozenset({"kind", "timestamp", "timeUnixNano", "resource"})
_NO_TIME = "-"


def format_time(ns: int) -> str:
    """UTC ISO-8601 with milliseconds: ``2026-11-23T10:00:00.123Z``."""
    moment = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def use_color(stream: IO[str]) -> bool:
    """Whether to colour output for ``stream``: only a TTY, and only when ``NO_COLOR`` is unset
    or empty (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # closed or detached stream
        return False


_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code != 0x09},
    ord("\\"): "\\\\",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
}
"""Backslash, newlines and control characters (tab aside) are escaped: one line per record,
and a logged value cannot move the cursor or recolour the terminal of whoever reads it."""


_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}
"""JSON already escapes C0 controls; DEL and C1 (``\\x9b`` starts an escape sequence too) not."""


def _one_line(text: str) -> str:
    return text.translate(_ESCAPES)


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = _one_line(value)
        return f'"{text}"' if (" " in text or "=" in text or not text) else text
    try:
        encoded = orjson.dumps(sanitize(value), default=str, option=orjson.OPT_SERIALIZE_NUMPY)
        return encoded.decode().translate(_JSON_ESCAPES)
    except (TypeError, orjson.JSONEncodeError):
        return _one_line(str(value))


def _pairs(attributes: Mapping[str, Any], skip: frozenset[str] = _SKIP_IN_LINE) -> str:
    return " ".join(
        f"{_one_line(str(key))}={_value(val)}" for key, val in attributes.items() if key not in skip
    )


def _render_log(
    when: str, level: str, body: str, attributes: Mapping[str, Any], logger: str, color: bool
) -> str:
    """The one implementation of a log line, for records and JSON lines alike."""
    body, level = _one_line(body), _one_line(level)
    pairs = _pairs(attributes)
    if logger:
        pairs = f"logger={_one_line(logger)} {pairs}".rstrip()
    if color:
        tint = _LEVEL_COLORS.get(level, "")
        line = f"{_DIM}{when}{_RESET} {tint}{level:<5}{_RESET} {_BOLD}{body}{_RESET}"
        return f"{line} {_DIM}{pairs}{_RESET}" if pairs else line
    return f"{when} {level:<5} {body} {pairs}".rstrip()


def _render_other(when: str, kind: str, data: Mapping[str, Any], color: bool) -> str:
    """Any other kind: ``time KIND key=value ...`` from its JSON object (time and resource are
    left out: the time leads the line, the resource is the same on every line)."""
    label = _one_line(kind.upper())
    pairs = _pairs(data, _NOT_PAIRS)
    if color:
        line = f"{_DIM}{when}{_RESET} {_KIND_COLOR}{label:<5}{_RESET}"
        return f"{line} {_DIM}{pairs}{_RESET}" if pairs else line
    return f"{when} {label:<5} {pairs}".rstrip()


def render_record(record: Record, *, color: bool = False) -> str:
    """One record as one console line (no trailing newline)."""
    when = format_time(record.timestamp)
    if isinstance(record, LogRecord):
        body = record.body if isinstance(record.body, str) else str(record.body)
        level = severity_text(record.severity)
        return _render_log(when, level, body, record.attributes, record.logger, color)
    return _render_other(when, record.kind, record_to_dict(record), color)


def _line_time(data: Mapping[str, Any]) -> str:
    """The time of a JSON line: exact ``timeUnixNano`` if present, else ``timestamp`` (float
    seconds, pontem's shape); ``-`` when neither is a usable number."""
    ns = data.get("timeUnixNano")
    try:
        if isinstance(ns, int) and not isinstance(ns, bool):
            return format_time(ns)
        seconds = data.get("timestamp")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            return format_time(round(seconds * 1e9))
    except (OverflowError, ValueError, OSError):  # out of the datetime range
        pass
    return _NO_TIME


def line_kind(data: Mapping[str, Any]) -> str:
    """The record kind of a JSON line; lines written by pontem (no ``kind``) are logs."""
    kind = data.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    return "log" if "severityNumber" in data or "severityText" in data else "record"


def line_severity(data: Mapping[str, Any]) -> int | None:
    """The OTel severity number of a JSON log line (from ``severityNumber``, else
    ``severityText``), or None when it has no valid one."""
    number = data.get("severityNumber")
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= 24:
        return number
    text = data.get("severityText")
    if isinstance(text, str):
        try:
            return int(Level.parse(text))
        except ValueError:
            return None
    return None


def render_line(data: Mapping[str, Any], *, color: bool = False) -> str:
    """One decoded JSONL line as one console line, exactly as :func:`render_record` renders the
    record it was written from; tolerant of lines from other writers (missing or odd fields
    render as best they can, never raise)."""
    when = _line_time(data)
    kind = line_kind(data)
    if kind != "log":
        return _render_other(when, kind, data, color)
    severity = line_severity(data)
    text = data.get("severityText")
    if severity is not None:
        level = severity_text(severity)
    else:
        level = text if isinstance(text, str) and text else "-"
    body = data.get("body", "")
    if not isinstance(body, str):
        body = _value(body)
    attributes = data.get("attributes")
    if not isinstance(attributes, Mapping):
        attributes = {}
    logger = data.get("logger")
    if not isinstance(logger, str):
        logger = ""
    return _render_log(when, level, body, attributes, logger, color)


def render_batch(batch: Iterable[Record], *, color: bool = False) -> str:
    """Console lines of a batch, each ending with a newline."""
    return "".join(render_record(record, color=color) + "\n" for record in batch)
