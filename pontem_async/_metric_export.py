"""Periodic export of a metrics registry into one pipeline, and the final export at shutdown.

One exporter per started pipeline. Its task runs on the pipeline's loop (the application's loop,
or the private loop thread of a synchronous program): every ``export_interval`` seconds it takes
a snapshot of the registry and submits the resulting ``MetricRecord`` s, which the pipeline
routes to the handlers whose ``kinds`` include ``metric``. The snapshot is cheap (one lock per
metric, values copied); encoding and I/O happen later on the consumer tasks, as for every record.

``finish()`` stops the task and exports once more, so the last values reach the handlers before
the pipeline drains: ``Telemetry.shutdown`` (async and sync), the exit-time shutdown and a
reconfiguration call it. If the loop is torn down under the task instead (``asyncio.run``
returning without a shutdown), the task makes that last export itself on its way out; records
that arrive after the consumers have finished are counted as dropped (reason ``closed``), never
lost silently.

While the registry holds no metric and nothing was dropped, nothing is exported: a program that
never uses metrics sends its handlers log records only. Once anything is dropped,
``pontem.dropped_records`` is exported even then (DESIGN section 2: every drop is reported as the
framework's own metric), so a logs-only application still sees its losses in its files.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from math import inf
from typing import TYPE_CHECKING

from pontem_async._metric_drops import DropCount
from pontem_async._registry import check_limit
from pontem_async.errors import ConfigError
from pontem_async.records import Resource

if TYPE_CHECKING:
    # not at run time: _config_schema imports pontem_async.telemetry, which imports us
    from pontem_async._config_schema import MetricsSettings, ProfilerSettings
    from pontem_async._registry import MetricsRegistry
    from pontem_async.pipeline import Pipeline

__all__ = ["MetricExporter", "check_settings", "pipeline_drops"]


class MetricExporter:
    """Exports ``registry`` into ``pipeline`` every ``interval`` seconds; see the module docs.

    Args:
        on_error: told about an export that failed (the task keeps going).
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        pipeline: Pipeline,
        interval: float,
        resource: Resource | None,
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.interval = interval
        self.resource = resource
        self._on_error = on_error
        self._lock = threading.Lock()
        self._done = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._future: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        """Start the periodic task on the pipeline's loop (from that loop or any thread)."""
        loop = self.pipeline.loop
        if loop is None:
            return
        if self.pipeline.on_pipeline_loop():
            self._task = loop.create_task(self._run(), name="pontem-async:metrics-export")
        else:
            self._future = asyncio.run_coroutine_threadsafe(self._run(), loop)

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.export()
        except asyncio.CancelledError:
            if not self._stopping:  # the loop is being torn down: last values, best effort
                self.finish()
            raise

    def export(self) -> int:
        """Submit one snapshot now; returns how many records. No-op once finished."""
        with self._lock:
            if self._done:
                return 0
            return self._submit()

    def _any_drops(self) -> bool:
        if self.registry.stats().get("dropped"):
            return True
        source = self.registry.drop_source
        return source is not None and any(count for _, _, count, _ in source())

    def _submit(self) -> int:
        if not len(self.registry) and not self._any_drops():
            return 0  # nothing to export; see the module docstring on pontem.dropped_records
        try:
            records = self.registry.snapshot(time.time_ns(), resource=self.resource)
            for record in records:
                self.pipeline.submit(record)
        except Exception as exc:  # an export must never take the exporter (or caller) down
            self._on_error("metrics export", exc)
            return 0
        return len(records)

    def finish(self) -> None:
        """Stop the periodic task and submit the final snapshot; safe from any thread, once."""
        self._stopping = True
        if self._task is not None:
            loop = self._task.get_loop()
            if self.pipeline.on_pipeline_loop():
                self._task.cancel()
            else:
                with contextlib.suppress(RuntimeError):  # loop closed: the task went with it
                    loop.call_soon_threadsafe(self._task.cancel)
        if self._future is not None:
            self._future.cancel()
        with self._lock:
            if self._done:
                return
            self._done = True
            self._submit()

    async def afinish(self) -> None:
        """:meth:`finish`, then wait for the task to end when it runs on this very loop."""
        self.finish()
        task = self._task
        if (
            task is not None
            and self.pipeline.on_pipeline_loop()
            and task is not asyncio.current_task()
            and not task.done()
        ):
            await asyncio.wait({task})


def pipeline_drops(pipeline: Pipeline, start_ns: int) -> list[DropCount]:
    """Every handler's drop counters as ``pontem.dropped_records`` series starting at
    ``start_ns`` (when the pipeline was built: its counters start from zero)."""
    out: list[DropCount] = []
    for lane in pipeline.lanes:
        with lane.lock:
            dropped = list(lane.dropped.items())
        out.extend((lane.name, reason, n, start_ns) for reason, n in dropped)
    return out


def check_settings(
    metrics: MetricsSettings | None, profiler: ProfilerSettings | None
) -> tuple[MetricsSettings | None, ProfilerSettings | None]:
    """Validate the ``metrics``/``profiler`` settings; None stays None (the defaults).

    The settings classes are imported here, not at the top: ``_config_schema`` imports
    ``pontem_async.telemetry`` (which imports this module) and the default instance is built
    while that import runs, so None must not need them.
    """
    if profiler is not None:
        from pontem_async._config_schema import ProfilerSettings

        if not isinstance(profiler, ProfilerSettings):
            raise TypeError(f"profiler: expected a ProfilerSettings, got {type(profiler).__name__}")
    if metrics is None:
        return None, profiler
    from pontem_async._config_schema import MetricsSettings

    if not isinstance(metrics, MetricsSettings):
        raise TypeError(f"metrics: expected a MetricsSettings, got {type(metrics).__name__}")
    interval = metrics.export_interval
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not 0 < interval < inf
    ):
        raise ConfigError(
            "metrics.export_interval",
            f"expected a positive, finite number of seconds, got {interval!r}",
        )
    check_limit(metrics.name_limit, "name_limit")
    check_limit(metrics.label_sets_limit, "label_sets_limit")
    return metrics, profiler
