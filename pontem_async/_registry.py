"""The metrics registry: declarations, cardinality caps, snapshots (shortcuts: ``_shortcuts``).

Each :class:`~pontem_async.Telemetry` owns one registry (``telemetry.metrics``); the module-level
``pa.metrics`` functions use the default instance's. The registry object lives as long as its
Telemetry: reconfiguring (``pa.init`` again) updates its caps in place, so metric objects held by
application code keep working and keep their cumulative values.

Caps, both from the ``metrics`` configuration section:

- ``name_limit``: metric names the registry holds. A declaration beyond it returns a working
  metric object that is not registered: its updates are validated, then dropped and counted
  (reason ``name_limit``).
- ``label_sets_limit``: series (label sets) per metric. An update that would create one more is
  dropped and counted (reason ``label_sets_limit``); existing series keep updating.

Drops are warned about once per metric on the ``pontem_async`` logger, readable in
:meth:`MetricsRegistry.stats`, and exported with every snapshot as the counter
``pontem.dropped_records{handler="pontem.metrics", reason=...}``, next to the pipeline's own
drops (``handler=<handler name>``) that the owning Telemetry feeds in through ``drop_source``.
Lowering a cap never evicts what is already there; it applies to what comes next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pontem_async._exposition import ExpositionFormat, render, sample_names
from pontem_async._metric_base import Metric
from pontem_async._metric_drops import DROPPED_RECORDS, DropCount, DropLedger
from pontem_async._metric_histogram import Histogram, Summary
from pontem_async._metric_states import Enum, Info
from pontem_async._metric_types import Counter, Gauge
from pontem_async._metric_values import (
    LABEL_RE,
    check_buckets,
    check_description,
    check_label_names,
    check_name,
    check_states,
    check_unit,
    exposed,
)
from pontem_async._shortcuts import PontemShortcuts
from pontem_async.errors import ConfigError
from pontem_async.records import MetricRecord, Resource

__all__ = ["LABEL_SETS_LIMIT", "NAME_LIMIT", "MetricsRegistry", "check_limit"]

_internal = logging.getLogger("pontem_async")
_M = TypeVar("_M", bound=Metric)

NAME_LIMIT = 1000
LABEL_SETS_LIMIT = 2000
"""The default caps (``MetricsSettings()``'s)."""


def check_limit(value: object, key: str) -> int:
    """A cap of the ``metrics`` section: a positive int, else ConfigError naming its key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"metrics.{key}", f"expected a positive integer, got {value!r}")
    return value


class MetricsRegistry(PontemShortcuts):
    """Holds metrics by name, enforces the caps, and snapshots everything for export.

    Args:
        name_limit: most metric names held (see the module docstring).
        label_sets_limit: most series per metric.
    """

    def __init__(
        self, *, name_limit: int = NAME_LIMIT, label_sets_limit: int = LABEL_SETS_LIMIT
    ) -> None:
        self.name_limit = check_limit(name_limit, "name_limit")
        self.label_sets_limit = check_limit(label_sets_limit, "label_sets_limit")
        self._lock = threading.RLock()
        self._metrics: dict[str, Metric] = {}
        # the series of unlabelled counters and gauges, for count()/set_gauge()'s fast path
        self._counter_series: dict[str, Any] = {}
        self._gauge_series: dict[str, Any] = {}
        self._owners: dict[str, str] = {}
        self._ledger = DropLedger()
        self.drop_source: Callable[[], Iterable[DropCount]] | None = None
        """Set by the owning Telemetry: the pipeline's drop counters, exported with ours."""
        self.on_remove: Callable[[], None] | None = None
        """Set by the owning Telemetry: called after a metric is removed, so a profiler that
        holds one of its metrics recompiles its state."""
        self._reserve(DROPPED_RECORDS, "counter", "")

    def configure(self, *, name_limit: int, label_sets_limit: int) -> None:
        """Change the caps in place; metrics and series already held are kept."""
        name_limit = check_limit(name_limit, "name_limit")
        label_sets_limit = check_limit(label_sets_limit, "label_sets_limit")
        with self._lock:
            self.name_limit = name_limit
            self.label_sets_limit = label_sets_limit

    # ------------------------------------------------------------------ declarations

    def counter(
        self, name: str, description: str = "", *, unit: str = "", labels: Sequence[str] = ()
    ) -> Counter:
        """Declare (or get) a counter. See ``pontem_async.metrics.counter``."""
        return self._declare(Counter, name, description, unit, labels)

    def gauge(
        self, name: str, description: str = "", *, unit: str = "", labels: Sequence[str] = ()
    ) -> Gauge:
        """Declare (or get) a gauge."""
        return self._declare(Gauge, name, description, unit, labels)

    def histogram(
        self,
        name: str,
        description: str = "",
        *,
        unit: str = "",
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> Histogram:
        """Declare (or get) a histogram; ``buckets`` default to prometheus_client's."""
        bounds = None if buckets is None else check_buckets(buckets)
        return self._declare(Histogram, name, description, unit, labels, buckets=bounds)

    def summary(
        self, name: str, description: str = "", *, unit: str = "", labels: Sequence[str] = ()
    ) -> Summary:
        """Declare (or get) a summary (count and sum)."""
        return self._declare(Summary, name, description, unit, labels)

    def info(self, name: str, description: str = "", *, labels: Sequence[str] = ()) -> Info:
        """Declare (or get) an info metric."""
        return self._declare(Info, name, description, "", labels)

    def enum(
        self,
        name: str,
        description: str = "",
        *,
        states: Sequence[str],
        labels: Sequence[str] = (),
    ) -> Enum:
        """Declare (or get) an enum; its initial state is the first of ``states``."""
        checked = check_states(states)
        family = exposed(check_name(name))
        if not LABEL_RE.fullmatch(family) or family.startswith("__"):
            raise ValueError(
                f"name: an enum's name is also its state label, so it must be a valid label "
                f"name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__'), got {name!r}"
            )
        label_names = check_label_names(labels, "enum", (family,))
        return self._declare(Enum, name, description, "", label_names, states=checked)

    def _declare(
        self,
        cls: type[_M],
        name: str,
        description: str,
        unit: str,
        labels: Sequence[str],
        **extra: Any,
    ) -> _M:
        name = check_name(name)
        description = check_description(description)
        unit = check_unit(unit)
        label_names = check_label_names(labels, cls.type, cls.reserved_labels)
        wanted = {"type": cls.type, "labels": label_names, "unit": unit, **extra}
        with self._lock:
            existing = self._metrics.get(name)
            if existing is not None:
                conflict = existing._same_declaration(wanted)
                if conflict:
                    raise ValueError(f"name: {name!r} is already declared and {conflict}")
                if description and not existing.description:
                    existing.description = description
                return existing  # type: ignore[return-value]
            accepting = len(self._metrics) < self.name_limit
            if accepting:
                self._reserve(name, cls.type, unit)
            options = {k: v for k, v in extra.items() if v is not None}
            metric = cls(self, name, description, unit, label_names, accepting=accepting, **options)
            if accepting:
                self._metrics[name] = metric
                if metric._unlabelled is not None and cls is Counter:
                    self._counter_series[name] = metric._unlabelled
                elif metric._unlabelled is not None and cls is Gauge:
                    self._gauge_series[name] = metric._unlabelled
        if not accepting:
            self._refused(metric, "name_limit")
        return metric

    def _reserve(self, name: str, metric_type: str, unit: str) -> None:
        """Claim the exposition names of a new metric (called with the lock held)."""
        names = sample_names(name, metric_type, unit)
        for sample in sorted(names):
            other = self._owners.get(sample)
            if other is not None:
                raise ValueError(
                    f"name: {name!r} would clash with {other!r} in the Prometheus exposition "
                    f"(both use {sample!r})"
                )
        for sample in names:
            self._owners[sample] = name

    def get(self, name: str) -> Metric | None:
        """The metric declared as ``name``, or None."""
        return self._metrics.get(name)

    def remove(self, name: str) -> bool:
        """Forget the metric ``name``; returns False if there was none.

        Objects still held keep updating their existing series (no longer exported); a new label
        set on them is dropped and counted with reason ``removed``.
        """
        with self._lock:
            metric = self._metrics.pop(name, None)
            self._counter_series.pop(name, None)
            self._gauge_series.pop(name, None)
            if metric is None:
                return False
            for sample in sample_names(name, metric.type, metric.unit):
                self._owners.pop(sample, None)
            metric._accepting = False
            metric._refused_as = "removed"
        if self.on_remove is not None:
            self.on_remove()
        return True

    def clear(self) -> None:
        """Forget every metric and drop count, as :meth:`remove` does each (meant for tests)."""
        with self._lock:
            for metric in self._metrics.values():
                metric._accepting = False
                metric._refused_as = "removed"
            self._metrics.clear()
            self._counter_series.clear()
            self._gauge_series.clear()
            self._owners.clear()
            self._ledger.clear()
            self._reserve(DROPPED_RECORDS, "counter", "")
        if self.on_remove is not None:
            self.on_remove()

    # ------------------------------------------------------------------ drops

    def _refused(self, metric: Metric, reason: str) -> None:
        """A cap refused a metric or a series: warn once per metric (never under a lock)."""
        limit = self.name_limit if reason == "name_limit" else self.label_sets_limit
        self._ledger.warn_once(metric.type, metric.name, reason, limit)

    def _count_drop(self, name: str, reason: str) -> None:
        self._ledger.count(name, reason)

    def stats(self) -> dict[str, Any]:
        """``metrics`` and ``series`` held, the caps, and updates ``dropped`` per reason and per
        metric (``dropped_by_metric``; see ``_metric_drops`` for its bound)."""
        with self._lock:
            metrics = list(self._metrics.values())
        return {
            "metrics": len(metrics),
            "series": sum(m.series_count() for m in metrics),
            "name_limit": self.name_limit,
            "label_sets_limit": self.label_sets_limit,
            **self._ledger.stats(),
        }

    # ------------------------------------------------------------------ snapshots

    def snapshot(
        self, now_ns: int | None = None, *, resource: Resource | None = None
    ) -> list[MetricRecord]:
        """One :class:`MetricRecord` per metric that has series, in declaration order, then
        ``pontem.dropped_records`` when anything was dropped. ``now_ns`` is the records'
        timestamp (default: now)."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            metrics = list(self._metrics.values())
        records = [r for m in metrics if (r := m._record(now, resource)) is not None]
        source = self.drop_source
        dropped = self._ledger.record(now, resource, source() if source is not None else ())
        if dropped is not None:
            records.append(dropped)
        return records

    def exposition(self, format: ExpositionFormat = "openmetrics") -> str:
        """The current snapshot in the Prometheus exposition ``format`` (``openmetrics`` or
        ``text``, the 0.0.4 format); see ``pontem_async._exposition``."""
        return render(self.snapshot(), format)

    def __len__(self) -> int:
        """How many metrics are registered."""
        return len(self._metrics)

    def __repr__(self) -> str:
        return f"<MetricsRegistry metrics={len(self._metrics)}>"
