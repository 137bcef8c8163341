"""Histograms and summaries, and their bound children (series).

Histogram buckets follow Prometheus and OTLP: upper bounds are inclusive, a value ``v`` lands in
the first bucket whose bound is ``>= v`` (``bisect_left``), and the last bucket is
``(bounds[-1], +Inf)``. Counts are kept per bucket (OTLP's shape); the exposition makes them
cumulative. A summary keeps count and sum only, like prometheus_client's.

The hot paths follow ``_metric_types`` (inline lookup and checks, explicit lock calls).
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pontem_async._metric_base import Metric, Series
from pontem_async._metric_values import observation
from pontem_async.records import HistogramValue, MetricType, SummaryValue

if TYPE_CHECKING:
    from pontem_async._registry import MetricsRegistry

__all__ = [
    "DEFAULT_BUCKETS",
    "Histogram",
    "HistogramSeries",
    "Summary",
    "SummarySeries",
    "int_limits",
]

_INF = math.inf
_BIG = 2**53
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""prometheus_client's default buckets (seconds), for ``histogram()`` declared without any."""


@functools.lru_cache(maxsize=64)
def int_limits(bounds: tuple[float, ...], divisor: float) -> tuple[int, ...]:
    """For each bound ``b``, the largest int ``v`` with ``v / divisor <= b`` (float division,
    as ``observe(v / divisor)`` computes it): an int ``v`` falls in the bucket of ``b`` or a
    lower one exactly when ``v <= limit``."""
    limits = []
    for bound in bounds:
        limit = math.floor(bound * divisor)
        while (limit + 1) / divisor <= bound:
            limit += 1
        while limit / divisor > bound:
            limit -= 1
        limits.append(limit)
    return tuple(limits)


# ---------------------------------------------------------------------- histogram


class HistogramSeries(Series):
    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, metric: Histogram, labels: dict[str, str], start_time: int) -> None:
        super().__init__(metric, labels, start_time)
        self._bounds = metric.buckets
        self._counts = [0] * (len(metric.buckets) + 1)
        self._sum: float = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` (finite) in its bucket and in the sum."""
        cls = value.__class__
        if not ((cls is float and -_INF < value < _INF) or (cls is int and -_BIG < value < _BIG)):
            value = observation(self._metric, value)
        index = bisect_left(self._bounds, value)
        lock = self._lock
        lock.acquire()
        try:
            self._counts[index] += 1
            self._sum += value
        finally:
            lock.release()

    def _observe_scaled(self, values: list[int], divisor: float) -> None:
        """Count ``value / divisor`` for each of many ints, exactly as ``observe`` would one
        at a time (the profiler's durations: nanoseconds counted in milliseconds), in C: the
        values are sorted (``list.sort`` compares ints natively), and each bucket is the
        stretch of them up to its bound's integer limit (:func:`int_limits`). Sorts
        ``values`` in place."""
        values.sort()
        per_bucket = []
        below = 0
        for limit in int_limits(self._bounds, divisor):
            upto = bisect_right(values, limit, below)
            per_bucket.append(upto - below)
            below = upto
        per_bucket.append(len(values) - below)
        total = sum(values) / divisor
        counts = self._counts
        with self._lock:
            for index, count in enumerate(per_bucket):
                if count:
                    counts[index] += count
            self._sum += total

    def _read(self) -> HistogramValue:
        counts = tuple(self._counts)
        return HistogramValue(sum(counts), float(self._sum), self._bounds, counts)


class DroppedHistogramSeries(HistogramSeries):
    __slots__ = ()

    def observe(self, value: float) -> None:
        observation(self._metric, value)
        self._drop()

    def _observe_scaled(self, values: list[int], divisor: float) -> None:
        for _ in values:
            self._drop()


class Histogram(Metric):
    """Observations counted in buckets, with their count and sum (latencies, sizes)."""

    type: ClassVar[MetricType] = "histogram"
    reserved_labels: ClassVar[tuple[str, ...]] = ("le",)
    _series_class = HistogramSeries
    _dropped_class = DroppedHistogramSeries
    __slots__ = ("buckets",)

    def __init__(
        self,
        registry: MetricsRegistry,
        name: str,
        description: str,
        unit: str,
        label_names: tuple[str, ...],
        *,
        accepting: bool = True,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        self.buckets = buckets
        super().__init__(registry, name, description, unit, label_names, accepting=accepting)

    def observe(self, value: float, *, labels: Mapping[str, object] | None = None) -> None:
        """Count ``value`` (finite) in the series of ``labels``.

        Raises:
            TypeError: ``value`` is not a number, or a label value is not a str/int.
            ValueError: ``value`` is NaN or infinite; labels missing or undeclared.
        """
        cls = value.__class__
        if not ((cls is float and -_INF < value < _INF) or (cls is int and -_BIG < value < _BIG)):
            value = observation(self, value)
        series = self._unlabelled if not labels else None  # the unlabelled fast path inline
        if series is None and (series := self._series_or_drop(labels)) is None:
            return
        index = bisect_left(self.buckets, value)
        lock = self._lock
        lock.acquire()
        try:
            series._counts[index] += 1
            series._sum += value
        finally:
            lock.release()

    def _same_declaration(self, other: dict[str, Any]) -> str:
        conflict = super()._same_declaration(other)
        if not conflict and other.get("buckets") not in (None, self.buckets):
            conflict = f"its buckets are {list(self.buckets)}, not {list(other['buckets'])}"
        return conflict


# ---------------------------------------------------------------------- summary


class SummarySeries(Series):
    __slots__ = ("_count", "_sum")

    def __init__(self, metric: Metric, labels: dict[str, str], start_time: int) -> None:
        super().__init__(metric, labels, start_time)
        self._count = 0
        self._sum: float = 0.0

    def observe(self, value: float) -> None:
        """Add ``value`` (finite) to the count and sum."""
        cls = value.__class__
        if not ((cls is float and -_INF < value < _INF) or (cls is int and -_BIG < value < _BIG)):
            value = observation(self._metric, value)
        lock = self._lock
        lock.acquire()
        try:
            self._count += 1
            self._sum += value
        finally:
            lock.release()

    def _read(self) -> SummaryValue:
        return SummaryValue(self._count, float(self._sum))


class DroppedSummarySeries(SummarySeries):
    __slots__ = ()

    def observe(self, value: float) -> None:
        observation(self._metric, value)
        self._drop()


class Summary(Metric):
    """Count and sum of observations, without buckets (prometheus_client's Summary)."""

    type: ClassVar[MetricType] = "summary"
    reserved_labels: ClassVar[tuple[str, ...]] = ("quantile",)
    _series_class = SummarySeries
    _dropped_class = DroppedSummarySeries
    __slots__ = ()

    def observe(self, value: float, *, labels: Mapping[str, object] | None = None) -> None:
        """Add ``value`` (finite) to the series of ``labels``; raises as ``Histogram.observe``."""
        cls = value.__class__
        if not ((cls is float and -_INF < value < _INF) or (cls is int and -_BIG < value < _BIG)):
            value = observation(self, value)
        if (series := self._series_or_drop(labels)) is None:
            return
        lock = self._lock
        lock.acquire()
        try:
            series._count += 1
            series._sum += value
        finally:
            lock.release()
