"""What every metric type shares: declared label names, series per label set, the caps.

A metric (``Counter``, ``Histogram``, ...) owns one :class:`Series` per label set, in a dict
keyed by the label *values* in declared order. The hot path of an update is:

1. check the value inline (an exact ``int``/``float`` in range: two comparisons);
2. find the series: ``operator.itemgetter(*label_names)(labels)`` (one C call; for a single
   label the key is the value itself, no tuple) and one dict lookup;
3. change the series' numbers under the metric's ``threading.Lock`` (uncontended: ~40 ns).

Anything unusual (a first-seen label set, a missing or undeclared label, an ``int`` label value,
a numpy float) falls to the slow path here, which validates everything, converts, and creates
the series — or refuses it when a cardinality cap is reached. A refused update is counted by
the registry (``pontem.dropped_records{handler="pontem.metrics", reason=...}``) and warned about
once per metric; it never raises, because the caller did nothing wrong.

One lock per metric, not per series: series creation needs it anyway, snapshots take it once per
metric, and with the GIL there is no parallelism a finer lock would buy.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar

from pontem_async._metric_values import check_label_mapping, label_value
from pontem_async.records import MetricPoint, MetricRecord, MetricType, Resource

if TYPE_CHECKING:
    from pontem_async._registry import MetricsRegistry

__all__ = ["Metric", "Series"]


class Series:
    """One label set of a metric: its labels (declared order), start time, running value.

    Returned by ``metric.labels(...)`` as a bound child: its update methods skip all label
    handling, for hot loops. ``start_time`` (ns since the epoch) is when the series was created;
    cumulative values (counters, histograms, summaries) count from then, for the life of the
    registry.
    """

    __slots__ = ("_lock", "_metric", "labels", "start_time")

    def __init__(self, metric: Metric, labels: dict[str, str], start_time: int) -> None:
        self._metric = metric
        self._lock = metric._lock
        self.labels = labels
        self.start_time = start_time

    def _read(self) -> Any:
        """The point value at snapshot time (called with the metric's lock held)."""
        raise NotImplementedError

    def _drop(self) -> None:
        """Count one refused update (only the ``Dropped*`` variants are ever refused)."""
        self._metric._drop()

    def __repr__(self) -> str:
        metric = self._metric
        return f"<{type(self).__name__} of {metric.type} {metric.name!r} {self.labels}>"


class Metric:
    """Base of the six metric types; declare them through a registry, never directly.

    Attributes:
        name: as declared (dots allowed); ``description``, ``unit``; ``label_names`` in
            declared order.
    """

    type: ClassVar[MetricType]
    reserved_labels: ClassVar[tuple[str, ...]] = ()
    _series_class: ClassVar[builtins.type[Series]]
    _dropped_class: ClassVar[builtins.type[Series]]

    __slots__ = (
        "_accepting",
        "_before_read",
        "_getter",
        "_lock",
        "_nlabels",
        "_refused_as",
        "_registry",
        "_series",
        "_unlabelled",
        "description",
        "label_names",
        "name",
        "unit",
    )

    def __init__(
        self,
        registry: MetricsRegistry,
        name: str,
        description: str,
        unit: str,
        label_names: tuple[str, ...],
        *,
        accepting: bool = True,
    ) -> None:
        self._registry = registry
        self.name = name
        self.description = description
        self.unit = unit
        self.label_names = label_names
        self._accepting = accepting
        # why new series are refused once not accepting: "name_limit", or "removed" (registry)
        self._refused_as = "name_limit"
        self._lock = threading.Lock()
        self._series: dict[Any, Series] = {}
        self._nlabels = len(label_names)
        self._getter: Callable[[Mapping[str, Any]], Any] | None = (
            itemgetter(*label_names) if label_names else None
        )
        self._unlabelled: Any = None
        # Called before every snapshot: a producer that defers its updates (the profiler's
        # ``time_profiler``) brings the metric up to date there, so a read never lags.
        self._before_read: Callable[[], None] | None = None
        if not label_names and accepting:
            self._unlabelled = self._series_class(self, {}, time.time_ns())
            self._series[()] = self._unlabelled

    # ------------------------------------------------------------------ label sets

    def labels(self, *values: object, **labels: object) -> Any:
        """The bound child (series) of one label set, by keyword or by declared position.

        Keep it for hot loops: its methods skip label handling entirely. Beyond the
        ``label_sets_limit`` cap a child that counts (and drops) its updates is returned.

        Raises:
            ValueError: missing or undeclared labels, or the wrong number of values.
            TypeError: a label value that is not a str or an int.
        """
        if values:
            if labels:
                raise TypeError("labels: pass label values by position or by name, not both")
            if len(values) != self._nlabels:
                raise ValueError(
                    f"labels: {self.type} {self.name!r} declares labels {list(self.label_names)}, "
                    f"got {len(values)} value(s)"
                )
            labels = dict(zip(self.label_names, values, strict=True))
        elif labels:
            try:
                found = (
                    self._series.get(self._getter(labels))  # type: ignore[misc]
                    if len(labels) == self._nlabels
                    else None
                )
            except Exception:
                found = None
            if found is not None:
                return found
        series = self._resolve(labels)
        if series is None:
            return self._dropped_class(self, {}, 0)
        return series

    def _series_or_drop(self, labels: Mapping[str, object] | None) -> Any:
        """The series for ``labels``, or None after counting the update as dropped (a cap)."""
        series = self._get(labels)
        if series is None:
            self._drop()
        return series

    def _get(self, labels: Mapping[str, object] | None) -> Any:
        """The series for ``labels`` (the common path inline), or None when refused."""
        if not labels:
            series = self._unlabelled
        else:
            try:
                series = (
                    self._series.get(self._getter(labels))  # type: ignore[misc]
                    if len(labels) == self._nlabels
                    else None
                )
            except Exception:
                series = None
        if series is None:
            return self._resolve(labels)
        return series

    def _resolve(self, labels: Mapping[str, object] | None) -> Series | None:
        """Slow path: validate and convert ``labels``, then find or create the series.

        Returns None when a cap refuses a new series (the registry warns once per metric).
        """
        names = self.label_names
        if not labels:
            if self._unlabelled is not None:
                return self._unlabelled  # type: ignore[no-any-return]
            if names:
                self._label_error({})
            self._registry._refused(self, self._refusal())
            return None
        labels = check_label_mapping(labels)
        if len(labels) != len(names) or any(name not in labels for name in names):
            self._label_error(labels)
        converted = {name: label_value(name, labels[name]) for name in names}
        key = self._getter(converted)  # type: ignore[misc]
        reason = ""
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if not self._accepting:
                    reason = self._refused_as
                elif len(self._series) >= self._registry.label_sets_limit:
                    reason = "label_sets_limit"
                else:
                    series = self._series_class(self, converted, time.time_ns())
                    self._series[key] = series
        if series is None:
            self._registry._refused(self, reason)
        return series

    def _label_error(self, labels: Mapping[Any, object]) -> None:
        names = self.label_names
        missing = [name for name in names if name not in labels]
        undeclared = [key for key in labels if key not in names]
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if undeclared:
            problems.append(f"undeclared {undeclared}")
        raise ValueError(
            f"labels: {self.type} {self.name!r} declares labels {list(names)}; "
            f"{' and '.join(problems)}"
        )

    def _refusal(self) -> str:
        return "label_sets_limit" if self._accepting else self._refused_as

    def _drop(self) -> None:
        self._registry._count_drop(self.name, self._refusal())

    # ------------------------------------------------------------------ declaration and snapshot

    def _same_declaration(self, other: dict[str, Any]) -> str:
        """Why a redeclaration with ``other`` (type, unit, labels, ...) conflicts, or ''."""
        if other["type"] != self.type:
            return f"it is a {self.type}, not a {other['type']}"
        if set(other["labels"]) != set(self.label_names):
            return f"its labels are {list(self.label_names)}, not {list(other['labels'])}"
        if other["unit"] != self.unit:
            return f"its unit is {self.unit!r}, not {other['unit']!r}"
        return ""

    def _states(self) -> tuple[str, ...]:
        return ()

    def _record(self, now_ns: int, resource: Resource | None) -> MetricRecord | None:
        """This metric's snapshot, or None while it has no series."""
        before_read = self._before_read
        if before_read is not None:
            before_read()
        with self._lock:
            if not self._series:
                return None
            points = tuple(
                MetricPoint(s.labels, s.start_time, s._read()) for s in self._series.values()
            )
        return MetricRecord(
            now_ns,
            self.name,
            self.type,
            self.unit,
            self.description,
            points,
            resource,
            self._states(),
        )

    @property
    def registered(self) -> bool:
        """False once the registry dropped it (``remove``/``clear``), or never took it
        (``name_limit``): then it is not exported and new label sets are refused."""
        return self._accepting

    def series_count(self) -> int:
        """How many label sets this metric holds."""
        return len(self._series)

    def __repr__(self) -> str:
        state = "" if self._accepting else f" (not registered: {self._refused_as})"
        return f"<{type(self).__name__} {self.name!r} labels={list(self.label_names)}{state}>"

