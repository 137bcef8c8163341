"""The pipeline: routes records to one bounded lane per handler and owns the loop they run on.

- ``submit()`` is safe from any thread and never awaits: it appends the record to the lane of
  every handler that accepts its kind (and, for logs, its severity).
- Started inside a running loop, the consumer tasks live on that loop. Started without one (a
  synchronous program), the pipeline runs a private loop in one daemon thread.
- ``flush()`` places a marker in every lane and returns when each consumer has delivered what
  was before it and flushed its handler. ``shutdown(timeout)`` drains, flushes and closes every
  handler, and reports what it could not deliver in time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from pontem_async._executor import DaemonExecutor, block_process_signals
from pontem_async._lane import Lane
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import ALL_KINDS, Handler
from pontem_async.records import Record

__all__ = ["Overflow", "Pipeline", "PipelineOptions", "ShutdownReport"]

Overflow = Literal["block", "drop_oldest", "drop_newest", "raise"]
_OVERFLOW_POLICIES: tuple[str, ...] = get_args(Overflow)
_MAX_SEVERITY = 24
_internal = logging.getLogger("pontem_async")
_T = TypeVar("_T")


@dataclass(frozen=True)
class PipelineOptions:
    """How records are queued and batched; the ``pipeline`` section of the configuration.

    Attributes:
        queue_size: records each handler's queue holds before the overflow policy applies.
        batch_size: most records handed to one ``emit`` call.
        flush_interval: seconds a partial batch may wait for more records.
        overflow: ``block``, ``drop_oldest``, ``drop_newest`` or ``raise``.
        handler_timeout: seconds one ``open``/``emit``/``flush``/``close`` call may take.
        shutdown_timeout: default deadline of ``shutdown()`` and of the exit-time shutdown.
    """

    queue_size: int = 10_000
    batch_size: int = 512
    flush_interval: float = 1.0
    overflow: Overflow = "drop_oldest"
    handler_timeout: float = 30.0
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("queue_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"pipeline.{name}", f"expected a positive integer, got {value!r}"
                )
        for name in ("flush_interval", "handler_timeout", "shutdown_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(
                    f"pipeline.{name}", f"expected a positive number of seconds, got {value!r}"
                )
        if self.overflow not in _OVERFLOW_POLICIES:
            raise ConfigError(
                "pipeline.overflow",
                f"expected one of {', '.join(_OVERFLOW_POLICIES)}, got {self.overflow!r}",
            )


@dataclass(frozen=True)
class ShutdownReport:
    """What ``shutdown()`` could not deliver before its deadline, per handler."""

    undelivered: Mapping[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every queued record was handed to its handlers."""
        return not any(self.undelivered.values())

    def __str__(self) -> str:
        if self.complete:
            return "shutdown complete: every queued record was delivered"
        parts = ", ".join(f"{name}: {n}" for name, n in self.undelivered.items() if n)
        return f"shutdown timed out; records not delivered per handler: {parts}"


class Pipeline:
    """Routes records to per-handler lanes; see the module docstring."""

    def __init__(self, handlers: Sequence[Handler], options: PipelineOptions | None = None):
        self.options = options if options is not None else PipelineOptions()
        names = [h.name for h in handlers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError("handlers", f"handler names must be unique, repeated: {duplicates}")
        self.lanes: tuple[Lane, ...] = tuple(
            Lane(h, self.options, self._lane_finished) for h in handlers
        )
        self._routes: dict[str, tuple[Lane, ...]] = {
            kind: tuple(lane for lane in self.lanes if lane.handler.accepts(kind))
            for kind in ALL_KINDS
        }
        log_lanes = self._routes["log"]
        self.min_log_severity: int = min((ln.min_severity for ln in log_lanes), default=1 << 30)
        # precomputed routing for submit(): lane.put per kind, and per severity for logs
        self._targets: dict[str, tuple[Callable[[Record], None], ...]] = {
            kind: tuple(lane.put for lane in lanes) for kind, lanes in self._routes.items()
        }
        self._log_targets: tuple[tuple[Callable[[Record], None], ...], ...] = tuple(
            tuple(lane.put for lane in log_lanes if severity >= lane.min_severity)
            for severity in range(_MAX_SEVERITY + 1)
        )
        self._closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owns_loop = False
        self._loop_thread: int | None = None
        self._executor: DaemonExecutor | None = None
        self._state: Literal["new", "running", "closing", "closed"] = "new"
        self._lock = threading.Lock()
        self._report: ShutdownReport | None = None

    # ------------------------------------------------------------------ submitting

    def submit(self, record: Record) -> None:
        """Hand ``record`` to every handler that takes it. Never blocks the event loop."""
        if self._closed:
            self._count_closed(record)
            return
        if record.kind == "log":
            targets = self._log_targets[record[1]]
        else:
            targets = self._targets.get(record.kind, ())
        for put in targets:
            put(record)

    async def asubmit(self, record: Record) -> None:
        """Like :meth:`submit`, but waits for room when a queue's overflow policy is ``block``."""
        if self._closed:
            self._count_closed(record)
            return
        if record.kind == "log":
            lanes = [ln for ln in self._routes["log"] if record[1] >= ln.min_severity]
        else:
            lanes = list(self._routes.get(record.kind, ()))
        for lane in lanes:
            await lane.aput(record)

    def _lane_finished(self) -> None:
        """A consumer ended. Outside shutdown that means its loop is being torn down
        (``asyncio.run`` returning): later records can only be counted, not delivered."""
        self._closed = True
        if self._state == "running":
            self._state = "closed"

    def _count_closed(self, record: Record) -> None:
        for lane in self._routes.get(record.kind, ()):
            if record.kind != "log" or record[1] >= lane.min_severity:
                lane.count_drop("closed")

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def owns_loop(self) -> bool:
        """True when the pipeline runs its private loop in a daemon thread."""
        return self._owns_loop

    def start(self) -> None:
        """Start the consumers: on the running loop if there is one, else on a private loop."""
        with self._lock:
            if self._state != "new":
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._start_private_loop()
            else:
                self.loop = loop
                self._loop_thread = threading.get_ident()
                for lane in self.lanes:
                    lane.start(loop)
            self._state = "running"

    def _start_private_loop(self) -> None:
        loop = asyncio.new_event_loop()
        executor = DaemonExecutor()
        loop.set_default_executor(executor)
        self._executor = executor
        started = threading.Event()

        def run() -> None:
            block_process_signals()
            asyncio.set_event_loop(loop)
            self._loop_thread = threading.get_ident()
            for lane in self.lanes:
                lane.start(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="pontem-async-pipeline", daemon=True)
        self.loop = loop
        self._owns_loop = True
        self._thread.start()
        started.wait()

    def on_pipeline_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    async def _on_loop(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro`` on the pipeline's loop, from that loop or from any other."""
        if self.loop is None or self.on_pipeline_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def _blocking(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        """Run ``coro`` on the pipeline's loop and wait for it from a thread that is not it."""
        if self.loop is None:
            coro.close()
            raise RuntimeError("the pipeline has not been started")
        if threading.get_ident() == self._loop_thread:
            coro.close()
            raise RuntimeError(
                "called from the pipeline's own event loop: use 'await telemetry.flush()' / "
                "'await telemetry.shutdown()' there"
            )
        if self.loop.is_closed() or not self.loop.is_running():
            if self.loop.is_closed():
                coro.close()
                raise RuntimeError("the pipeline's event loop is closed")
            return self.loop.run_until_complete(coro)
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(None if timeout is None else timeout + 5.0)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record submitted before the call is delivered and flushed.

        Returns:
            True when every handler delivered and flushed; False on a handler failure or
            when ``timeout`` seconds passed first.
        """
        if self._state != "running":
            return self._state == "new" and not any(lane.buf for lane in self.lanes)
        futures = [lane.add_marker() for lane in self.lanes if not lane.finished]
        if not futures:
            return True
        waiting = [asyncio.wrap_future(f) for f in futures]
        done, pending = await asyncio.wait(waiting, timeout=timeout)
        for fut in pending:
            fut.cancel()
        return not pending and all(f.result() for f in done)

    def flush_sync(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for synchronous code (not callable from the pipeline's loop)."""
        if self._state != "running":
            return True

        async def call() -> bool:
            return await self.flush(timeout)

        return self._blocking(call(), timeout)

    def _begin_shutdown(self) -> ShutdownReport | None:
        """Move to "closing"; return the final report at once when there is nothing to run
        (never started: what it holds is counted as ``never_started``; already shut down)."""
        with self._lock:
            if self._state == "new":
                self._state = "closed"
                self._closed = True
                self._report = ShutdownReport({ln.name: ln.queued() for ln in self.lanes})
                for lane in self.lanes:
                    lane.count_drop("never_started", lane.queued())
                return self._report
            if self._state != "running":
                return self._report if self._report is not None else ShutdownReport()
            self._state = "closing"
            self._closed = True
            return None

    async def shutdown(self, timeout: float | None = None) -> ShutdownReport:
        """Deliver what is queued (up to ``timeout`` seconds), then close every handler."""
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        early = self._begin_shutdown()
        if early is not None:
            return early
        report = await self._on_loop(self._shutdown_on_loop(timeout))
        self._stop_private_loop()
        return report

    def shutdown_sync(self, timeout: float | None = None) -> ShutdownReport:
        """:meth:`shutdown` for synchronous code and exit hooks."""
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        early = self._begin_shutdown()
        if early is not None:
            return early
        try:
            report = self._blocking(self._shutdown_on_loop(timeout), timeout)
        except (RuntimeError, concurrent.futures.TimeoutError) as exc:
            undelivered = {lane.name: lane.undelivered() for lane in self.lanes}
            for lane in self.lanes:
                lane.count_drop("loop_unavailable", lane.undelivered())
            report = ShutdownReport(undelivered)
            self._state = "closed"
            self._report = report
            _internal.warning("pontem-async shutdown could not run: %s; %s", exc, report)
            return report
        self._stop_private_loop()
        return report

    async def _shutdown_on_loop(self, timeout: float) -> ShutdownReport:
        for lane in self.lanes:
            lane.closing = True
            lane._release_waiters()
            lane.wake()
        tasks = [lane.task for lane in self.lanes if lane.task is not None]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        undelivered: dict[str, int] = {}
        for lane in self.lanes:
            if lane.task in pending:
                lane.abandoned = True
                undelivered[lane.name] = lane.undelivered()
                lane.count_drop("shutdown_timeout", undelivered[lane.name])
                lane.task.cancel()
            else:
                undelivered[lane.name] = 0
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        report = ShutdownReport(undelivered)
        if not report.complete:
            _internal.warning("pontem-async %s", report)
        self._state = "closed"
        self._report = report
        return report

    def _stop_private_loop(self) -> None:
        if not self._owns_loop or self.loop is None or self._thread is None:
            return
        loop, thread = self.loop, self._thread
        if thread is threading.current_thread():
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        thread.join(timeout=5.0)
        if not thread.is_alive():
            loop.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ introspection

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per handler: ``queued``, ``delivered``, ``filtered``, ``failed_batches``, ``dropped``
        (a dict of reason -> count)."""
        return {lane.name: lane.stats() for lane in self.lanes}
