"""Records as human-readable console lines: ``time LEVEL body key=value ...``.

One line per record, whatever the body contains (newlines are escaped), so ``grep`` and
``tail -f`` stay useful. Colour (ANSI) only when asked; the caller decides when a TTY allows it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from pontem_async.encoding.jsonl import record_to_dict, sanitize
from pontem_async.records import LogRecord, Record, severity_text

__all__ = ["format_time", "render_batch", "render_record"]

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_LEVEL_COLORS = {
    "TRACE": "\x1b[90m",
    "DEBUG": "\x1b[36m",
    "INFO": "\x1b[32m",
    "WARN": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "FATAL": "\x1b[1;41;97m",
}
_SKIP_IN_LINE = frozenset({"exception.stacktrace"})


def format_time(ns: int) -> str:
    """UTC ISO-8601 with milliseconds: ``2026-11-23T10:00:00.123Z``."""
    moment = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = _one_line(value)
        return f'"{text}"' if (" " in text or "=" in text or not text) else text
    try:
        return orjson.dumps(sanitize(value), default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _one_line(str(value))


def _pairs(attributes: Mapping[str, Any]) -> str:
    return " ".join(
        f"{key}={_value(val)}" for key, val in attributes.items() if key not in _SKIP_IN_LINE
    )


def render_record(record: Record, *, color: bool = False) -> str:
    """One record as one console line (no trailing newline)."""
    when = format_time(record.timestamp)
    if isinstance(record, LogRecord):
        level = severity_text(record.severity)
        body = _one_line(record.body if isinstance(record.body, str) else str(record.body))
        pairs = _pairs(record.attributes)
        if record.logger:
            pairs = f"logger={record.logger} {pairs}".rstrip()
        if color:
            tint = _LEVEL_COLORS.get(level, "")
            line = f"{_DIM}{when}{_RESET} {tint}{level:<5}{_RESET} {_BOLD}{body}{_RESET}"
            return f"{line} {_DIM}{pairs}{_RESET}" if pairs else line
        return f"{when} {level:<5} {body} {pairs}".rstrip()
    data = record_to_dict(record)
    data.pop("kind", None)
    for noisy in ("timestamp", "timeUnixNano", "resource"):
        data.pop(noisy, None)
    label = record.kind.upper()
    return f"{when} {label:<5} {_pairs(data)}".rstrip()


def render_batch(batch: Iterable[Record], *, color: bool = False) -> str:
    """Console lines of a batch, each ending with a newline."""
    return "".join(render_record(record, color=color) + "\n" for record in batch)
