"""Info and enum metrics: values that are labels, not numbers.

An info metric holds a mapping (``{"version": "1.2"}``), exposed as one sample of value 1 whose
labels are the mapping; an enum holds one of its declared states, exposed as an OpenMetrics
stateset. Setting either is a single reference store, atomic under the GIL: no lock is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pontem_async._metric_base import Metric, Series
from pontem_async._metric_values import LABEL_PATTERN, LABEL_RE, exposed, label_value, show
from pontem_async.records import MetricType

if TYPE_CHECKING:
    from pontem_async._registry import MetricsRegistry

__all__ = ["Enum", "EnumSeries", "Info", "InfoSeries"]


# ---------------------------------------------------------------------- info


class InfoSeries(Series):
    __slots__ = ("_value",)

    def __init__(self, metric: Metric, labels: dict[str, str], start_time: int) -> None:
        super().__init__(metric, labels, start_time)
        self._value: Mapping[str, str] = {}

    def info(self, values: Mapping[str, object]) -> None:
        """Replace the info mapping (names like label names; values str or int)."""
        self._value = _info_values(self._metric, values)

    def _read(self) -> Mapping[str, str]:
        return self._value


class DroppedInfoSeries(InfoSeries):
    __slots__ = ()

    def info(self, values: Mapping[str, object]) -> None:
        _info_values(self._metric, values)
        self._drop()


def _info_values(metric: Metric, values: object) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise TypeError(f"values: expected a mapping of name to value, got {show(values)}")
    declared = {exposed(name) for name in metric.label_names}
    out: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in values.items():
        if not isinstance(key, str) or not LABEL_RE.fullmatch(key) or key[:2] == "__":
            raise ValueError(
                f"values: info names must match {LABEL_PATTERN} and not start with '__', "
                f"got {key!r}"
            )
        if exposed(key) in declared:
            raise ValueError(f"values: {key!r} is a label of info {metric.name!r}")
        if exposed(key) in seen:
            raise ValueError(f"values: {key!r} repeats another name in the exposition")
        seen.add(exposed(key))
        out[str.__str__(key)] = label_value(key, value)
    return out


class Info(Metric):
    """Constant facts as labels with value 1 (build version, model name)."""

    type: ClassVar[MetricType] = "info"
    _series_class = InfoSeries
    _dropped_class = DroppedInfoSeries
    __slots__ = ()

    def info(
        self, values: Mapping[str, object], *, labels: Mapping[str, object] | None = None
    ) -> None:
        """Replace the info mapping of the series of ``labels``.

        Raises:
            TypeError: ``values`` is not a mapping, or a value is not a str/int.
            ValueError: a name is invalid or clashes with a declared label.
        """
        checked = _info_values(self, values)
        if (series := self._series_or_drop(labels)) is None:
            return
        series._value = checked


# ---------------------------------------------------------------------- enum


class EnumSeries(Series):
    __slots__ = ("_value",)

    def __init__(self, metric: Enum, labels: dict[str, str], start_time: int) -> None:
        super().__init__(metric, labels, start_time)
        self._value: str = metric.states[0]

    def state(self, state: str) -> None:
        """Make ``state`` (one of the declared states) the current one."""
        self._value = _state(self._metric, state)  # type: ignore[arg-type]

    def _read(self) -> str:
        return self._value


class DroppedEnumSeries(EnumSeries):
    __slots__ = ()

    def state(self, state: str) -> None:
        _state(self._metric, state)  # type: ignore[arg-type]
        self._drop()


def _state(metric: Enum, state: object) -> str:
    found = metric._state_map.get(state) if isinstance(state, str) else None
    if found is None:
        if not isinstance(state, str):
            raise TypeError(f"state: expected a str, got {show(state)}")
        raise ValueError(
            f"state: enum {metric.name!r} has states {list(metric.states)}, got {state!r}"
        )
    return found


class Enum(Metric):
    """Which of a fixed set of states something is in (exposed as an OpenMetrics stateset)."""

    type: ClassVar[MetricType] = "enum"
    _series_class = EnumSeries
    _dropped_class = DroppedEnumSeries
    __slots__ = ("_state_map", "states")

    def __init__(
        self,
        registry: MetricsRegistry,
        name: str,
        description: str,
        unit: str,
        label_names: tuple[str, ...],
        *,
        accepting: bool = True,
        states: tuple[str, ...] = (),
    ) -> None:
        self.states = states
        self._state_map = {s: s for s in states}
        super().__init__(registry, name, description, unit, label_names, accepting=accepting)

    def state(self, state: str, *, labels: Mapping[str, object] | None = None) -> None:
        """Make ``state`` the current state of the series of ``labels``.

        Raises:
            ValueError: ``state`` is not a declared state; labels missing or undeclared.
        """
        checked = _state(self, state)
        if (series := self._series_or_drop(labels)) is None:
            return
        series._value = checked

    def _states(self) -> tuple[str, ...]:
        return self.states

    def _same_declaration(self, other: dict[str, Any]) -> str:
        conflict = super()._same_declaration(other)
        if not conflict and other.get("states") != self.states:
            conflict = f"its states are {list(self.states)}, not {list(other['states'])}"
        return conflict
