"""OTLPHandler: logs, metrics and call-tree traces to an OpenTelemetry collector over OTLP/HTTP.

Records are encoded as OTLP/JSON (``pontem_async.encoding.otlp``) and POSTed, gzipped by
default, on one shared ``aiohttp.ClientSession``: logs and events to ``{endpoint}/v1/logs``,
metric snapshots and series to ``/v1/metrics``, profiled call trees to ``/v1/traces``.

Delivery semantics (the OTLP/HTTP specification's, plus a bounded buffer):

==========================================  ==============================================
the collector answers                       the handler
==========================================  ==============================================
2xx                                         done; a filled ``partialSuccess`` is counted
                                            as dropped (``partial_success``), not retried
429, 502, 503, 504, no answer, timeout      keeps the body in the retry buffer and tries
                                            again after ``Retry-After`` (seconds or an HTTP
                                            date) or exponential backoff with jitter
any other status (400, 401, 413, 500, ...)  drops the body, counted as ``rejected`` with
                                            the collector's message logged once
==========================================  ==============================================

The retry buffer holds every body not yet answered, oldest first, bounded in bodies and bytes;
when full, the oldest bodies are dropped (``retry_buffer_full``). A body over ``max_body_bytes``
is split by records; a single record over it is dropped (``too_large``). ``flush()`` waits for
every answer and raises when the collector is unavailable or records were dropped since the
last flush; ``close()`` tries the retry buffer once more and counts what it could not deliver
(``undelivered_at_close``). All drops appear in ``telemetry.stats()[name]["dropped"]`` and in
``pontem.dropped_records``; the handler's own counters in ``stats()[name]["handler"]``.

Header values (auth tokens) are credentials: they never appear in reprs, ``describe()``,
``check-config`` output, logs or error messages.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from yarl import URL

from pontem_async import settings
from pontem_async._redact import REDACTED, redact_text, show
from pontem_async.encoding.otlp import PATHS, Signal, encode_bodies, split_by_signal
from pontem_async.handlers._otlp_buffer import Pending, RetryBuffer
from pontem_async.handlers._otlp_delivery import Counters, Delivery, OTLPDeliveryError
from pontem_async.handlers._otlp_policy import Backoff
from pontem_async.handlers.base import Handler
from pontem_async.records import Record

__all__ = ["DEFAULT_ENDPOINT", "OTLPDeliveryError", "OTLPHandler"]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
"""The collector's OTLP/HTTP address when neither the argument nor the environment names one."""
_USER_AGENT = "pontem-async-otlp"
_COMPRESS_OFF_LOOP = 256 * 1024  # gzip bigger bodies in a worker thread (zlib drops the GIL)
_GZIP_LEVEL = 5
_internal = logging.getLogger("pontem_async")


def _url(value: Any, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument}: expected an http(s) URL string, got {type(value).__name__}")
    try:
        url = URL(value.strip())
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{argument}: expected an http:// or https:// URL, got {show(value)}")
    return str(url)


def _positive(value: Any, argument: str, kind: type = float) -> Any:
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or not value > 0 or not math.isfinite(value):
        what = "number" if kind is float else "integer"
        raise ValueError(f"{argument}: expected a positive {what}, got {value!r}")
    return value


class OTLPHandler(Handler):
    """Deliver records to an OpenTelemetry collector over OTLP/HTTP (JSON).

    Args:
        endpoint: the collector's base URL; ``/v1/logs``, ``/v1/metrics`` and ``/v1/traces``
            are appended. Default: ``$PONTEM_OTLP_ENDPOINT``, else ``http://127.0.0.1:4318``
            (an explicit argument beats the environment).
        headers: extra request headers, typically ``{"Authorization": "Bearer ..."}``; their
            values are treated as secrets.
        compression: ``"gzip"`` (default) or None.
        timeout: seconds one request may take before it counts as failed (and is retried).
        logs_endpoint, metrics_endpoint, traces_endpoint: full URLs of one signal, used as
            given (nothing appended), overriding ``endpoint`` for that signal.
        max_body_bytes: largest uncompressed JSON body sent; larger batches are split.
        retry_buffer_bodies, retry_buffer_bytes: bounds of the retry buffer.
        retry_initial, retry_max: first and largest backoff delay, in seconds.
        **options: ``name``, ``kinds``, ``level``, ``filter`` (see :class:`Handler`).

    Raises:
        TypeError, ValueError: an argument is invalid; the message starts with its name.
    """

    env_overrides: ClassVar[Mapping[str, str]] = {"endpoint": settings.PONTEM_OTLP_ENDPOINT}
    secret_fields: ClassVar[frozenset[str]] = frozenset({"headers"})

    def __init__(
        self,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        compression: Literal["gzip"] | None = "gzip",
        timeout: float = 10.0,
        *,
        logs_endpoint: str | None = None,
        metrics_endpoint: str | None = None,
        traces_endpoint: str | None = None,
        max_body_bytes: int = 4 * 1024 * 1024,
        retry_buffer_bodies: int = 256,
        retry_buffer_bytes: int = 64 * 1024 * 1024,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        chosen = settings.resolve(
            endpoint, settings.PONTEM_OTLP_ENDPOINT, settings.UNSET, DEFAULT_ENDPOINT
        )
        self.endpoint: str = _url(chosen, "endpoint").rstrip("/")
        overrides = {"logs": logs_endpoint, "metrics": metrics_endpoint, "traces": traces_endpoint}
        self.urls: dict[Signal, str] = {}
        for signal, path in PATHS.items():
            given = overrides[signal]
            self.urls[signal] = (
                self.endpoint + path if given is None else _url(given, f"{signal}_endpoint")
            )
        self._headers = self._check_headers(headers)
        if compression not in ("gzip", None):
            raise ValueError(f"compression: expected 'gzip' or None, got {show(compression)}")
        self.compression = compression
        self.timeout = float(_positive(timeout, "timeout"))
        self.max_body_bytes = _positive(max_body_bytes, "max_body_bytes", int)
        self.retry_buffer_bodies = _positive(retry_buffer_bodies, "retry_buffer_bodies", int)
        self.retry_buffer_bytes = _positive(retry_buffer_bytes, "retry_buffer_bytes", int)
        if self.retry_buffer_bytes < self.max_body_bytes:
            raise ValueError(
                f"retry_buffer_bytes: must be at least max_body_bytes ({self.max_body_bytes}), "
                f"got {retry_buffer_bytes}"
            )
        self.retry_initial = float(_positive(retry_initial, "retry_initial"))
        self.retry_max = float(_positive(retry_max, "retry_max"))
        if self.retry_max < self.retry_initial:
            raise ValueError(
                f"retry_max: must be at least retry_initial ({self.retry_initial}), got {retry_max}"
            )
        self._buffer = RetryBuffer(self.retry_buffer_bodies, self.retry_buffer_bytes)
        self._backoff = Backoff(self.retry_initial, self.retry_max)
        self._counters = Counters()
        self._delivery: Delivery | None = None

    @staticmethod
    def _check_headers(headers: Any) -> dict[str, str]:
        if headers is None:
            return {}
        if not isinstance(headers, Mapping):
            raise TypeError(f"headers: expected a mapping of names to values, got "
                            f"{type(headers).__name__}")  # fmt: skip
        checked: dict[str, str] = {}
        for key, value in headers.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"headers: names must be non-empty strings, got {key!r}")
            if not isinstance(value, str):  # the value may be a token: never shown
                raise TypeError(f"headers: the value of {key!r} must be a string")
            if "\n" in value or "\r" in value:
                raise ValueError(f"headers: the value of {key!r} holds a line break")
            checked[key] = value
        return checked

    # ------------------------------------------------------------------ the contract

    async def open(self) -> None:
        """Open the HTTP session and start the delivery task (no request is made here: a
        collector that is down at start only delays delivery)."""
        if self._delivery is not None and not self._delivery.task.done():
            return
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            **({"Content-Encoding": "gzip"} if self.compression == "gzip" else {}),
            **self._headers,
        }
        self._delivery = Delivery(
            name=self.name,
            headers=headers,
            secrets=list(self._headers.values()),
            timeout=self.timeout,
            backoff=self._backoff,
            buffer=self._buffer,
            counters=self._counters,
            count_dropped=self.count_dropped,
        )

    async def emit(self, batch: Sequence[Record]) -> None:
        """Encode ``batch`` into one body per signal (split when too large), queue the bodies
        behind any waiting for a retry, and wait for their first answer (not while the
        collector is known to be unavailable: then they wait in the retry buffer)."""
        if self._delivery is None or self._delivery.task.done():
            await self.open()
        delivery = self._delivery
        assert delivery is not None
        groups = split_by_signal(batch)
        unsupported = len(batch) - sum(len(records) for records in groups.values())
        delivery.drop("unsupported_kind", unsupported)
        loop = asyncio.get_running_loop()
        items: list[Pending] = []
        for signal, records in groups.items():
            bodies, too_large = encode_bodies(signal, records, self.max_body_bytes)
            if too_large:
                self._counters.too_large_records += len(too_large)
                delivery.drop("too_large", len(too_large))
                _internal.warning(
                    "handler %r: %d %s record(s) encode to more than max_body_bytes=%d "
                    "(largest %d bytes) and are dropped (counted as 'too_large')",
                    self.name, len(too_large), signal, self.max_body_bytes, max(too_large),
                )  # fmt: skip
            for body in bodies:
                payload = await self._compress(body.data)
                url = self.urls[signal]
                items.append(Pending(signal, url, payload, body.records, 0, loop.create_future()))
        if not items:
            return
        unavailable = delivery.in_backoff()
        delivery.submit(items)
        if unavailable:
            return
        answers = [item.answered for item in items if item.answered is not None]
        await asyncio.wait(answers, timeout=2 * self.timeout)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every body emitted so far is answered.

        Raises:
            OTLPDeliveryError: the collector is unavailable (bodies wait in the retry buffer,
                nothing is lost yet), or records were dropped since the last flush (refused,
                evicted, too large: see ``stats()``).
        """
        delivery = self._delivery
        if delivery is None:
            return
        limit = 3 * self.timeout if timeout is None else 0.9 * timeout
        await delivery.wait_idle(limit)
        dropped = self._counters.dropped_since_flush
        if dropped:
            self._counters.dropped_since_flush = {}
            detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(dropped.items()))
            raise OTLPDeliveryError(
                f"handler {self.name!r}: records dropped since the last flush ({detail}; "
                f"last error: {self._counters.last_error})"
            )

    async def close(self, timeout: float | None = None) -> None:
        """Try every body still in the retry buffer once more, count what could not be
        delivered (``undelivered_at_close``), close the session. Idempotent."""
        delivery, self._delivery = self._delivery, None
        if delivery is None:
            return
        await delivery.stop(2 * self.timeout if timeout is None else 0.9 * timeout)

    # ------------------------------------------------------------------ reporting

    def stats(self) -> dict[str, Any]:
        """Counters of this handler: bodies and records sent, failed attempts, records refused
        or partially refused, evicted, too large, undelivered at close, and what the retry
        buffer holds now."""
        c = self._counters
        return {
            "sent_bodies": c.sent_bodies,
            "sent_records": c.sent_records,
            "failed_attempts": c.failed_attempts,
            "rejected_records": c.rejected_records,
            "partially_rejected": c.partially_rejected,
            "evicted_records": c.evicted_records,
            "too_large_records": c.too_large_records,
            "undelivered_at_close": c.undelivered_at_close,
            "retry_buffer_bodies": len(self._buffer),
            "retry_buffer_records": self._buffer.records,
            "retry_buffer_bytes": self._buffer.bytes,
            "last_error": c.last_error,
        }

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            endpoint=redact_text(self.endpoint),
            urls={signal: redact_text(url) for signal, url in self.urls.items()},
            headers={key: REDACTED for key in self._headers},
            compression=self.compression,
            timeout=self.timeout,
            max_body_bytes=self.max_body_bytes,
            retry_buffer_bodies=self.retry_buffer_bodies,
            retry_buffer_bytes=self.retry_buffer_bytes,
            retry_initial=self.retry_initial,
            retry_max=self.retry_max,
        )
        return info

    def __repr__(self) -> str:
        return f"<OTLPHandler name={self.name!r} endpoint={redact_text(self.endpoint)!r}>"

    # ------------------------------------------------------------------ internals

    async def _compress(self, data: bytes) -> bytes:
        if self.compression != "gzip":
            return data
        if len(data) < _COMPRESS_OFF_LOOP:
            return gzip.compress(data, _GZIP_LEVEL, mtime=0)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _gzip, data)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, _GZIP_LEVEL, mtime=0)
