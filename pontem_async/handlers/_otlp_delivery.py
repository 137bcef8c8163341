"""The OTLP handler's delivery task: sends the retry buffer's bodies, in order, one at a time.

One task per opened handler owns the HTTP traffic, so bodies reach the collector in the order
they were emitted, a failed body is retried before anything emitted after it, and an outage
costs one failing request per backoff period instead of one per batch. ``emit`` puts bodies in
the buffer and waits for their first answer; while the collector is unavailable (the task is
in backoff) it returns at once, so the buffer grows with the outage up to its bounds while the
pipeline keeps taking records, and the task drains it, oldest first, when the collector is back.

After each answer (see ``_otlp_policy``): a success resets the backoff; a retryable failure puts
the body back at the front and waits for ``Retry-After`` or the next backoff delay; a refusal,
a partial success and an eviction are counted as dropped records with their reason.
``stop()`` (the handler's close) makes one last attempt at every body still waiting, stops at
the first failure, and counts what remains as ``undelivered_at_close``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pontem_async._redact import REDACTED, redact_text
from pontem_async.handlers._otlp_buffer import Pending, RetryBuffer
from pontem_async.handlers._otlp_policy import (
    Backoff,
    Outcome,
    classify,
    error_message,
    partial_success,
    retry_after_seconds,
)

__all__ = ["Counters", "Delivery", "OTLPDeliveryError"]

_internal = logging.getLogger("pontem_async")
_MAX_ANSWER = 64 * 1024
_MAX_CAUSES = 64


class OTLPDeliveryError(ConnectionError):
    """``flush()`` could not get everything answered: the collector is unavailable (records
    wait in the retry buffer) or refused records since the last flush (counted as dropped)."""


@dataclass
class Counters:
    """What the handler reports in ``telemetry.stats()[name]["handler"]`` (plain ints)."""

    sent_bodies: int = 0
    sent_records: int = 0
    failed_attempts: int = 0
    rejected_records: int = 0
    partially_rejected: int = 0
    evicted_records: int = 0
    too_large_records: int = 0
    undelivered_at_close: int = 0
    last_error: str | None = None
    dropped_since_flush: dict[str, int] = field(default_factory=dict)


class Delivery:
    """Sends the bodies of one handler; created by ``open()``, ended by ``stop()``."""

    def __init__(
        self,
        *,
        name: str,
        headers: Mapping[str, str],
        secrets: Sequence[str],
        timeout: float,
        backoff: Backoff,
        buffer: RetryBuffer,
        counters: Counters,
        count_dropped: Callable[[str, int], None],
    ) -> None:
        self.name = name
        self.headers = dict(headers)
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self.timeout = timeout
        self.backoff = backoff
        self.buffer = buffer
        self.counters = counters
        self._count_dropped = count_dropped
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout), raise_for_status=False
        )
        self.retry_at = 0.0
        self.failures = 0
        self.closing = False
        self.outage_since: float | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._progress: list[asyncio.Future[None]] = []
        self._causes: set[str] = set()
        self.task = self.loop.create_task(self._run(), name=f"pontem-async:{name}:otlp")

    # ------------------------------------------------------------------ used by the handler

    def in_backoff(self) -> bool:
        return self.retry_at > self.loop.time()

    def submit(self, items: Sequence[Pending]) -> None:
        """Queue ``items`` behind everything already waiting; count what the bounds evict."""
        for item in items:
            for evicted in self.buffer.add(item):
                self.counters.evicted_records += evicted.records
                self.drop("retry_buffer_full", evicted.records)
                evicted.settle()
                self._warn_once(
                    "evicted",
                    "handler %r: retry buffer full (%d bodies / %d bytes); the oldest bodies are "
                    "dropped (counted as 'retry_buffer_full')",
                    self.name,
                    self.buffer.max_bodies,
                    self.buffer.max_bytes,
                )
        self._wake()

    def drop(self, reason: str, records: int) -> None:
        if records <= 0:
            return
        self._count_dropped(reason, records)
        since = self.counters.dropped_since_flush
        since[reason] = since.get(reason, 0) + records

    async def wait_idle(self, limit: float) -> None:
        """Return once every body got its final answer. Raise :class:`OTLPDeliveryError` at
        once when the collector is known to be unavailable (a retry is scheduled: the bodies
        wait for it in the buffer, nothing is lost), when an attempt fails meanwhile, or when
        ``limit`` seconds pass first. So a flush never waits out a backoff: it is bounded by
        the requests in flight, however long the outage."""
        deadline = self.loop.time() + limit
        failures = self.failures
        while len(self.buffer):
            if self.task.done():
                raise OTLPDeliveryError(f"handler {self.name!r}: the delivery task has ended")
            if self.failures > failures or self.in_backoff():
                wait = max(self.retry_at - self.loop.time(), 0.0)
                raise OTLPDeliveryError(
                    f"handler {self.name!r}: collector unavailable "
                    f"({self.counters.last_error}); {self.buffer.records} records in "
                    f"{len(self.buffer)} bodies wait in the retry buffer (next try in {wait:.1f}s)"
                )
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise OTLPDeliveryError(
                    f"handler {self.name!r}: no answer within {limit:.3g}s; "
                    f"{self.buffer.records} records wait in the retry buffer"
                )
            fut = self.loop.create_future()
            self._progress.append(fut)
            try:
                await asyncio.wait_for(asyncio.shield(fut), remaining)
            except asyncio.TimeoutError:
                continue
            finally:
                if fut in self._progress:
                    self._progress.remove(fut)

    async def stop(self, limit: float) -> None:
        """One last attempt at every waiting body (stopping at the first failure), then count
        what is left, close the session. Bounded by ``limit`` seconds."""
        self.closing = True
        self._wake()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), limit)
        except asyncio.TimeoutError:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        except asyncio.CancelledError:
            self.task.cancel()
            raise

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        try:
            while not self.closing:
                if not self.buffer.waiting:
                    await self._sleep(None)
                    continue
                delay = self.retry_at - self.loop.time()
                if delay > 0:
                    await self._sleep(delay)
                    continue
                item = self.buffer.take()
                if item is not None:
                    await self._attempt(item)
            await self._last_attempts()
        finally:
            self._abandon()
            await self.session.close()

    async def _last_attempts(self) -> None:
        while True:
            item = self.buffer.take()
            if item is None or await self._attempt(item) == "retry":
                return

    def _abandon(self) -> None:
        """Whatever is still held will never be sent: count it, release every waiter."""
        left = self.buffer.clear()
        records = sum(item.records for item in left)
        for item in left:
            item.settle()
        if records:
            self.counters.undelivered_at_close += records
            self.drop("undelivered_at_close", records)
            _internal.warning(
                "handler %r: %d records in %d bodies could not be delivered before close "
                "(last error: %s)",
                self.name,
                records,
                len(left),
                self.counters.last_error,
            )
        self._notify()

    async def _sleep(self, delay: float | None) -> None:
        fut = self.loop.create_future()
        self._waiter = fut
        timer = self.loop.call_later(delay, _resolve, fut) if delay is not None else None
        try:
            await fut
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            _resolve(waiter)

    def _notify(self) -> None:
        waiting, self._progress = self._progress, []
        for fut in waiting:
            _resolve(fut)

    # ------------------------------------------------------------------ one request

    async def _attempt(self, item: Pending) -> Outcome:
        item.attempts += 1
        status, answer, retry_after, failure = await self._post(item)
        outcome: Outcome = "retry" if status is None else classify(status)
        if outcome == "retry":
            self._retry_later(item, status, failure, retry_after)
        else:
            self.buffer.finish(item)
            if outcome == "sent":
                self._sent(item, answer)
            else:
                self._rejected(item, status, answer)
        item.settle()
        self._notify()
        return outcome

    async def _post(self, item: Pending) -> tuple[int | None, bytes, str | None, str | None]:
        """(status, answer body, Retry-After, failure text); status None when no answer."""
        headers = self.headers
        try:
            async with self.session.post(item.url, data=item.payload, headers=headers) as resp:
                answer = await resp.content.read(_MAX_ANSWER)
                return resp.status, answer, resp.headers.get("Retry-After"), None
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            return None, b"", None, f"no answer within {self.timeout:g}s"
        except Exception as exc:  # connection refused/reset, DNS, TLS...: worth another try
            return None, b"", None, self._hide(f"{type(exc).__name__}: {exc}")

    def _sent(self, item: Pending, answer: bytes) -> None:
        counters = self.counters
        counters.sent_bodies += 1
        counters.sent_records += item.records
        self.backoff.reset()
        self.retry_at = 0.0
        if self.outage_since is not None:
            _internal.info(
                "handler %r: the collector answers again after %.1fs; %d bodies wait to be sent",
                self.name,
                time.monotonic() - self.outage_since,
                self.buffer.waiting,
            )
            self.outage_since = None
        partial = partial_success(answer)
        if partial is not None:
            counters.partially_rejected += partial.rejected
            self.drop("partial_success", partial.rejected)
            message = self._hide(partial.message)
            self._warn_once(
                f"partial:{message}",
                "handler %r: the collector accepted a %s body only in part: %d rejected (%s)",
                self.name,
                item.signal,
                partial.rejected,
                message or "no message",
            )

    def _rejected(self, item: Pending, status: int | None, answer: bytes) -> None:
        message = self._hide(error_message(answer))
        self.counters.rejected_records += item.records
        self.counters.last_error = f"HTTP {status}: {message}"
        self.drop("rejected", item.records)
        self._warn_once(
            f"rejected:{status}:{message}",
            "handler %r: the collector refused a %s body with HTTP %s (%s); its %d records are "
            "dropped, not retried (counted as 'rejected')",
            self.name,
            item.signal,
            status,
            message or "no message",
            item.records,
        )

    def _retry_later(
        self, item: Pending, status: int | None, failure: str | None, retry_after: str | None
    ) -> None:
        self.buffer.put_back(item)
        self.failures += 1
        self.counters.failed_attempts += 1
        reason = failure if status is None else f"HTTP {status}"
        self.counters.last_error = reason
        delay = retry_after_seconds(retry_after, time.time()) if status is not None else None
        if delay is None:
            delay = self.backoff.next_delay()
        self.retry_at = self.loop.time() + delay
        for waiting in self.buffer:  # emits waiting for these bodies may return: they wait here
            waiting.settle()
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            _internal.warning(
                "handler %r: collector unavailable (%s); records wait in the retry buffer "
                "(at most %d bodies / %d bytes) and are retried with backoff",
                self.name,
                reason,
                self.buffer.max_bodies,
                self.buffer.max_bytes,
            )

    # ------------------------------------------------------------------ reporting

    def _hide(self, text: str) -> str:
        """``text`` without header values (tokens) nor URL passwords."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return redact_text(text)

    def _warn_once(self, cause: str, message: str, *args: Any) -> None:
        if cause in self._causes:
            return
        if len(self._causes) < _MAX_CAUSES:
            self._causes.add(cause)
        _internal.warning(message, *args)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
