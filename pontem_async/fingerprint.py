"""Stable error fingerprints: the same error gives the same 40-hex id across runs and processes.

The fingerprint is the SHA-1 of:

- the exception's qualified type name (``builtins.KeyError``, ``app.db.StaleRow``);
- its message *template*: the message with the parts that vary between occurrences masked
  (UUIDs, hex ids and addresses, numbers), so ``user 42 not found`` and ``user 7 not found``
  group together;
- the top frames where it was raised (innermost first): module and function names, not line
  numbers, so an unrelated edit above the function does not split a group;
- the service name, so two services raising the same library error stay apart.

Nothing here depends on the process (no ``id()``, no hash randomisation), hence stable.
"""

from __future__ import annotations

import hashlib
import re
import traceback
from types import TracebackType

__all__ = ["TOP_FRAMES", "exception_fingerprint", "message_template"]

TOP_FRAMES = 5
"""How many innermost frames take part in the fingerprint."""

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?<![A-Za-z_\d])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
)


def message_template(message: str) -> str:
    """``message`` with its varying parts (UUIDs, hex ids, numbers) masked."""
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    return message


def _top_frames(tb: TracebackType | None) -> list[str]:
    frames: list[str] = []
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "?")
        frames.append(f"{module}:{tb.tb_frame.f_code.co_name}")
        tb = tb.tb_next
    return frames[::-1][:TOP_FRAMES]


def exception_type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def exception_fingerprint(exc: BaseException, service: str = "") -> str:
    """The 40-hex fingerprint of ``exc`` raised in ``service`` (see the module docstring)."""
    parts = [
        exception_type_name(exc),
        message_template(str(exc)),
        *_top_frames(exc.__traceback__),
        service,
    ]
    return hashlib.sha1("\n".join(parts).encode("utf-8", "backslashreplace")).hexdigest()


def format_stacktrace(exc: BaseException) -> str:
    """The full traceback text, chained causes included, as stdlib prints it."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
