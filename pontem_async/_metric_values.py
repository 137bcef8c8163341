"""Argument checks of the metrics API: names, label names and values, numbers, buckets, states.

Everything here runs when a metric is declared, or on the slow path of an update (the first use
of a label set, a value of an unusual type). The hot paths of the metric types check the common
case inline (an exact ``int``/``float``, a label set seen before) and call in here only when that
check fails, so a valid update never pays for the messages below.

Every error names the argument it is about (``value: ...``, ``labels: ...``), like the rest of
pontem-async, and is raised at the call site: a metric call with valid arguments never raises.

Decisions, documented in ``pontem_async.metrics``:

- Metric names follow Prometheus (``[a-zA-Z_:][a-zA-Z0-9_:]*``) and also accept dots, because
  pontem and OpenTelemetry users name metrics ``model.inference``. Names are stored as given;
  only the Prometheus exposition writes ``.`` as ``_``. Label names likewise accept dots
  (OpenTelemetry's ``http.route``).
- Label values are ``str``; an ``int`` (``bool`` included) is accepted and written with ``str()``,
  as pontem and prometheus_client do, so migrated dashboards keep matching. Anything else
  (``float``, ``None``, objects) is refused: a float label is nearly always a measurement put
  in the wrong place, and each distinct value would become a series of its own.
- ``bool`` is refused as a *metric value*: ``count("x", True)`` is far more often a bug than a
  deliberate 1.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pontem_async._metric_base import Metric

__all__ = [
    "LABEL_PATTERN",
    "LABEL_RE",
    "NAME_PATTERN",
    "check_buckets",
    "check_description",
    "check_label_mapping",
    "check_label_names",
    "check_name",
    "check_states",
    "check_unit",
    "exposed",
    "increment",
    "label_value",
    "metric_number",
    "number",
    "observation",
    "show",
]

_INF = math.inf
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:.]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.]*")
LABEL_RE = _LABEL_RE
"""Label names (and info names): Prometheus' rule plus dots."""
NAME_PATTERN = "[a-zA-Z_:][a-zA-Z0-9_:.]*"
LABEL_PATTERN = "[a-zA-Z_][a-zA-Z0-9_.]*"


def show(value: object) -> str:
    """A short description of a bad value for an error message: type and a clipped repr."""
    try:
        text = repr(value)
    except Exception:
        text = "<unprintable>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def exposed(name: str) -> str:
    """A stored name as the Prometheus exposition writes it (dots become underscores)."""
    return name.replace(".", "_")


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {show(name)}")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"name: expected a metric name matching {NAME_PATTERN}, got {name!r}")
    return str.__str__(name)


def check_description(description: object) -> str:
    if not isinstance(description, str):
        raise TypeError(f"description: expected a str, got {show(description)}")
    return str.__str__(description)


def check_unit(unit: object) -> str:
    if not isinstance(unit, str):
        raise TypeError(f"unit: expected a str, got {show(unit)}")
    if unit != unit.strip() or "\n" in unit:
        raise ValueError(f"unit: expected a unit such as 'ms' or 'By', got {unit!r}")
    return str.__str__(unit)


def check_label_names(labels: object, kind: str, reserved: Iterable[str] = ()) -> tuple[str, ...]:
    """Validate declared label names; ``reserved`` are names the metric type uses itself."""
    if isinstance(labels, str | bytes) or not isinstance(labels, Iterable):
        raise TypeError(f"labels: expected a list of label names, got {show(labels)}")
    names: list[str] = []
    seen: dict[str, str] = {}
    reserved = set(reserved)
    for label in labels:
        if not isinstance(label, str):
            raise TypeError(f"labels: expected label names as str, got {show(label)}")
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(
                f"labels: expected label names matching {LABEL_PATTERN}, got {label!r}"
            )
        if label.startswith("__"):
            raise ValueError(f"labels: names starting with '__' are reserved, got {label!r}")
        if exposed(label) in reserved:
            raise ValueError(f"labels: {label!r} is reserved by {kind} metrics")
        if label in names:
            raise ValueError(f"labels: {label!r} is repeated")
        other = seen.get(exposed(label))
        if other is not None:
            raise ValueError(
                f"labels: {other!r} and {label!r} are the same label in the exposition "
                f"({exposed(label)!r})"
            )
        seen[exposed(label)] = label
        names.append(str.__str__(label))
    return tuple(names)


def label_value(label: str, value: object) -> str:
    """A label value as stored: a str as is, an int (bool included) through ``str()``."""
    if value.__class__ is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"labels: the value of {label!r} must be a str or an int, got {show(value)}")


def number(value: object, what: str = "value") -> float:
    """``value`` as a number (exact ints stay ints); bools and non-numbers raise TypeError."""
    if value.__class__ is float or value.__class__ is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: expected a number, got {show(value)}")
    return float(value)


def check_buckets(buckets: object) -> tuple[float, ...]:
    """Histogram bucket upper bounds: non-empty, finite, strictly increasing.

    A trailing ``+Inf`` is accepted and dropped (prometheus_client users write it); the
    ``(last bound, +Inf)`` bucket always exists.
    """
    if isinstance(buckets, str | bytes) or not isinstance(buckets, Iterable):
        raise TypeError(f"buckets: expected a list of numbers, got {show(buckets)}")
    bounds = [float(number(b, "buckets")) for b in buckets]
    if bounds and bounds[-1] == _INF:
        bounds.pop()
    if not bounds:
        raise ValueError("buckets: expected at least one finite bound, got none")
    for bound in bounds:
        if not -_INF < bound < _INF:
            raise ValueError(
                f"buckets: bounds must be finite numbers (the +Inf bucket is implied), got {bound}"
            )
    for low, high in itertools.pairwise(bounds):
        if not low < high:
            raise ValueError(f"buckets: bounds must be strictly increasing, got {low} then {high}")
    return tuple(bounds)


def check_states(states: object) -> tuple[str, ...]:
    if isinstance(states, str | bytes) or not isinstance(states, Iterable):
        raise TypeError(f"states: expected a list of state names, got {show(states)}")
    out: list[str] = []
    for state in states:
        if not isinstance(state, str):
            raise TypeError(f"states: expected state names as str, got {show(state)}")
        if state in out:
            raise ValueError(f"states: {state!r} is repeated")
        out.append(str.__str__(state))
    if not out:
        raise ValueError("states: expected at least one state, got none")
    return tuple(out)


def check_label_mapping(labels: object) -> Mapping[str, Any]:
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels: expected a mapping of label name to value, got {show(labels)}")
    return labels


# ---------------------------------------------------------------------- metric values


def metric_number(metric: Metric, value: object) -> float:
    """Slow-path value check: any real number but bool, as a float.

    The fast paths take exact floats and ints within ±2**53 as they are; anything else (numpy
    scalars, Fractions, int subclasses, huge ints) is converted here, once, so that sums never
    meet an int too large for a float (``OverflowError`` inside an update).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"value: {metric.type} {metric.name!r} takes a number, got {show(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(
            f"value: {metric.type} {metric.name!r} takes numbers a float can hold, "
            f"got {show(value)}"
        ) from None


def increment(metric: Metric, value: object) -> float:
    number = metric_number(metric, value)
    if not 0 <= number < _INF:
        raise ValueError(
            f"value: counter {metric.name!r} can only increase by a finite amount >= 0, "
            f"got {number!r}"
        )
    return number


def observation(metric: Metric, value: object) -> float:
    number = metric_number(metric, value)
    if not -_INF < number < _INF:
        raise ValueError(
            f"value: {metric.type} {metric.name!r} takes finite observations, got {number!r}"
        )
    return number
