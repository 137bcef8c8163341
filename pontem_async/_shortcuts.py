"""pontem's shortcuts: ``count``, ``record``, ``set_gauge`` and ``timer`` by metric name.

They keep pontem's calls working as written (pontem's documentation is the reference): the first
call declares the metric, with the names of its keyword arguments as label names (sorted) and the
unit given; later calls must use the same label names, and a unit that differs from the declared
one raises ValueError (``unit=""``, the default, means "whatever was declared"). ``record`` and
``timer`` declare histograms with OpenTelemetry's default millisecond bounds, as pontem does, or
``boundaries=`` (honoured at the first call only, also as pontem does). ``name`` and ``value``
are positional-only, so ``name=`` and ``value=`` are free to be label names.

``count`` and ``set_gauge`` on an unlabelled metric are the most common calls of all, so they
skip the metric object: the registry keeps the series of unlabelled counters and gauges by name,
and the update is inlined here (one Python frame and a dict lookup before the lock).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pontem_async._metric_base import Metric
from pontem_async._metric_histogram import Histogram
from pontem_async._metric_types import Counter, Gauge
from pontem_async._metric_values import check_buckets
from pontem_async._timer import RECORD_BUCKETS, Timer, timer_buckets, timer_divisor

__all__ = ["PontemShortcuts"]

_M = TypeVar("_M", bound=Metric)
_INF = math.inf
_BIG = 2**53  # ints below it add to a float total without ever raising OverflowError


class PontemShortcuts:
    """Mixed into :class:`~pontem_async._registry.MetricsRegistry`."""

    if TYPE_CHECKING:  # provided by the registry
        _metrics: dict[str, Metric]
        _counter_series: dict[str, Any]
        _gauge_series: dict[str, Any]

        def _declare(
            self,
            cls: type[_M],
            name: str,
            description: str,
            unit: str,
            labels: Sequence[str],
            **extra: Any,
        ) -> _M: ...

    def _shortcut(
        self, cls: type[_M], name: str, unit: str, labels: Iterable[str], **extra: Any
    ) -> _M:
        existing = self._metrics.get(name)
        if existing is None:
            return self._declare(cls, name, "", unit, sorted(labels), **extra)
        if existing.type != cls.type:
            raise ValueError(f"name: {name!r} is a {existing.type}, not a {cls.type}")
        if unit and unit != existing.unit:
            raise ValueError(
                f"unit: {existing.type} {name!r} was declared with unit {existing.unit!r}, "
                f"got {unit!r}"
            )
        return existing  # type: ignore[return-value]

    def count(self, name: str, value: float = 1, /, *, unit: str = "", **labels: object) -> None:
        """pontem's ``count``: add ``value`` to the counter ``name`` (declared at first use)."""
        series = self._counter_series.get(name)
        if series is not None and not labels and not unit:
            # Counter.inc inlined for the most common shortcut call: an unlabelled counter
            cls = value.__class__
            if (cls is int and 0 <= value < _BIG) or (cls is float and 0 <= value < _INF):
                lock = series._lock
                lock.acquire()
                try:
                    series._value += value
                finally:
                    lock.release()
                return
        metric = self._metrics.get(name)
        if metric.__class__ is not Counter or (unit and unit != metric.unit):
            metric = self._shortcut(Counter, name, unit, labels)
        metric.inc(value, labels=labels)

    def record(
        self,
        name: str,
        value: float,
        /,
        *,
        unit: str = "",
        boundaries: Sequence[float] | None = None,
        **labels: object,
    ) -> None:
        """pontem's ``record``: observe ``value`` in the histogram ``name``."""
        metric = self._metrics.get(name)
        if metric.__class__ is not Histogram or (unit and unit != metric.unit):
            bounds = RECORD_BUCKETS if boundaries is None else check_buckets(boundaries)
            metric = self._shortcut(Histogram, name, unit, labels, buckets=bounds)
        metric.observe(value, labels=labels)

    def set_gauge(self, name: str, value: float, /, *, unit: str = "", **labels: object) -> None:
        """pontem's ``set_gauge``: set the gauge ``name`` to ``value``."""
        series = self._gauge_series.get(name)
        if series is not None and not labels and not unit:
            cls = value.__class__
            if cls is float or cls is int:  # Gauge.set inlined for an unlabelled gauge
                lock = series._lock
                lock.acquire()
                try:
                    series._value = value
                finally:
                    lock.release()
                return
        metric = self._metrics.get(name)
        if metric.__class__ is not Gauge or (unit and unit != metric.unit):
            metric = self._shortcut(Gauge, name, unit, labels)
        metric.set(value, labels=labels)

    def timer(
        self,
        name: str,
        /,
        *,
        unit: str = "ms",
        boundaries: Sequence[float] | None = None,
        **labels: object,
    ) -> Timer:
        """pontem's ``timer``: a context manager / decorator timing into the histogram ``name``."""
        divisor = timer_divisor(unit)
        bounds = timer_buckets(unit) if boundaries is None else check_buckets(boundaries)
        histogram = self._shortcut(Histogram, name, unit, labels, buckets=bounds)
        return Timer(histogram.labels(**labels), divisor)
