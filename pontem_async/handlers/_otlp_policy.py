"""What the OTLP handler does with an answer: pure decisions, no I/O (tested on their own).

The OTLP/HTTP specification says which failures are worth another try: 429, 502, 503 and 504
(the collector is overloaded or a proxy could not reach it) and failures to connect or to get
an answer at all. Every other status means the collector will never take this body: retrying
would only repeat the refusal, so it is dropped and counted with the collector's message.

A ``200`` may carry a ``partialSuccess``: how many records the collector refused, and why. An
absent, ``null`` or empty one means "all accepted"; a filled one is counted and reported, and
never retried (the rest of the body was accepted, a retry would duplicate it).
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Literal

import orjson

__all__ = [
    "MAX_RETRY_AFTER",
    "RETRYABLE_STATUSES",
    "Backoff",
    "Outcome",
    "PartialSuccess",
    "classify",
    "error_message",
    "partial_success",
    "retry_after_seconds",
]

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses after which the same body is sent again (OTLP/HTTP "retryable response codes")."""
MAX_RETRY_AFTER = 300.0
"""Longest ``Retry-After`` honoured, in seconds: a longer one is treated as this one, so a
misconfigured proxy cannot park the handler for hours (records keep flowing into the bounded
retry buffer meanwhile)."""
_PARTIAL_FIELDS = ("rejectedLogRecords", "rejectedDataPoints", "rejectedSpans")

Outcome = Literal["sent", "retry", "rejected"]


def classify(status: int) -> Outcome:
    """``sent`` for 2xx, ``retry`` for 429/502/503/504, ``rejected`` for anything else."""
    if 200 <= status < 300:
        return "sent"
    if status in RETRYABLE_STATUSES:
        return "retry"
    return "rejected"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date
    (``now`` is the current Unix time). None when absent or unreadable; capped at
    :data:`MAX_RETRY_AFTER`; a date in the past means 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT; a zone-less one is read as UTC
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass
class Backoff:
    """Exponential backoff with jitter and a cap.

    The n-th consecutive failure waits ``d/2 + random(0, d/2)`` seconds with
    ``d = min(cap, initial * 2**n)``: doubling, never above ``cap``, and spread so that many
    clients failing together do not retry in lockstep. :meth:`reset` after a success.
    """

    initial: float = 0.5
    cap: float = 30.0
    random: Callable[[], float] = random.random
    failures: int = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more consecutive failure."""
        exponent = min(self.failures, 62)
        ceiling = min(self.cap, self.initial * (2.0**exponent))
        self.failures += 1
        return ceiling / 2 + self.random() * ceiling / 2

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class PartialSuccess:
    """A filled ``partialSuccess``: records the collector refused and its explanation."""

    rejected: int
    message: str


def _document(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def partial_success(body: bytes) -> PartialSuccess | None:
    """The ``partialSuccess`` of a 2xx answer's JSON body, or None when everything was
    accepted (no body, not JSON, ``partialSuccess`` absent, ``null`` or ``{}``, or filled
    with zero rejections and no message)."""
    document = _document(body)
    if not isinstance(document, dict):
        return None
    partial = document.get("partialSuccess")
    if not isinstance(partial, dict) or not partial:
        return None
    rejected = 0
    for field in _PARTIAL_FIELDS:
        value = partial.get(field)
        if value is None:
            continue
        try:
            rejected += max(int(value), 0)
        except (TypeError, ValueError):
            continue
    message = partial.get("errorMessage")
    text = message if isinstance(message, str) else ""
    if not rejected and not text:
        return None
    return PartialSuccess(rejected, text)


def error_message(body: bytes, limit: int = 300) -> str:
    """The collector's explanation of a refusal: the ``message`` of a ``google.rpc.Status``
    JSON body, else the body's text, shortened to ``limit`` characters."""
    document = _document(body)
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        text: str = document["message"]
    else:
        text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
