"""Argument checks of ``pa.metrics.series``: name, labels, values, steps, timestamps.

Every check runs on the caller's thread, at the call, and raises
:class:`~pontem_async.errors.ValidationError` naming the argument, so a bad call fails where it
was written instead of as a mystery on a consumer task. What each check costs matters, because a
training loop calls ``series`` thousands of times a second:

- **NumPy arrays** are checked with whole-array operations (``ndim``, ``dtype.kind``,
  ``numpy.diff``), never element by element in Python, and copied once (a ``memcpy``) so the
  caller may reuse its buffer the moment the call returns.
- **Lists** cannot avoid touching each element, but do it with C-level builtins
  (``set(map(type, values))``, ``map(operator.lt, ...)``): a list of plain floats or ints is
  accepted without a Python-level loop; only unusual elements (NumPy scalars, Fractions, bools)
  take the slow path that converts or names them.
- NumPy is never imported here: an array can only reach us if the caller already imported it,
  so ``sys.modules["numpy"]`` is all we need. Other array-likes (``__array__``, e.g. a CPU
  tensor) are converted with ``numpy.asarray``, which imports NumPy only in that case.

Decisions (documented in ``pontem_async.metrics``):

- values are real numbers: ``int`` (64-bit range) and ``float`` in lists; integer and float
  dtypes in arrays. ``bool`` and ``complex`` are refused (a bool "loss" is a bug). NaN and
  ±infinity are **accepted**, like gauges accept them: a diverging loss is exactly what a
  training curve must show. They are written as the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``, as everywhere in the JSONL format.
- steps are integers >= 0, strictly increasing within a call and after the last step of the
  same series; timestamps are integer nanoseconds since the Unix epoch (``time.time_ns()``) or
  a ``datetime64`` array, one per value, in any order (wall clocks step back).
"""

from __future__ import annotations

import numbers
import operator
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pontem_async._metric_values import LABEL_PATTERN, LABEL_RE, show
from pontem_async.errors import ValidationError

__all__ = [
    "NAME_PATTERN",
    "SCALE_PATTERN",
    "check_first_step",
    "check_labels",
    "check_name",
    "check_scale",
    "check_steps",
    "check_timestamp",
    "check_timestamps",
    "check_values",
]

NAME_PATTERN = "[a-zA-Z_][a-zA-Z0-9_.:/-]{0,254}"
"""Series names: OpenTelemetry's instrument-name rule (``train/loss`` and ``model.loss`` both
work) plus ``:``, at most 255 characters."""
SCALE_PATTERN = "[a-zA-Z_][a-zA-Z0-9_.]{0,63}"
"""What steps count: ``step``, ``epoch``, ``episode``, ``env_step``, ``sample``..."""
_NAME_RE = re.compile(NAME_PATTERN)
_SCALE_RE = re.compile(SCALE_PATTERN)
_INT_MIN, _INT_MAX = -(2**63), 2**64
_STEP_MAX = 2**63
_PLAIN_NUMBERS = frozenset({float, int})
_INTS = frozenset({int})


def numpy_module() -> Any:
    """The NumPy module if the process has imported it, else None (never imports it)."""
    return sys.modules.get("numpy")


def _is_array(value: object) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray)


def _as_array(value: Any, argument: str) -> Any:
    """An array-like that is neither a list nor an ndarray (a tensor, a pandas Series), as a
    NumPy array; the one place NumPy may get imported."""
    try:
        import numpy

        return numpy.asarray(value)
    except Exception as exc:
        raise ValidationError(
            argument, f"could not convert {type(value).__name__} to a NumPy array: {exc}"
        ) from None


# ---------------------------------------------------------------------- name, labels, scale


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValidationError("name", f"expected a str, got {show(name)}")
    if not name:
        raise ValidationError("name", "expected a non-empty series name, got ''")
    if not _NAME_RE.fullmatch(name):
        raise ValidationError(
            "name", f"expected a series name matching {NAME_PATTERN}, got {name!r}"
        )
    return str.__str__(name)


def check_scale(scale: object) -> str:
    if not isinstance(scale, str) or not _SCALE_RE.fullmatch(scale):
        raise ValidationError(
            "scale",
            f"expected what the steps count, matching {SCALE_PATTERN} ('step', 'epoch', "
            f"'episode'...), got {show(scale)}",
        )
    return str.__str__(scale)


def check_labels(labels: object) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """Labels as stored (a fresh ``dict[str, str]``) and their canonical key (sorted items).

    Names follow the metric label rule; values are ``str``, or ``int`` written with ``str()``
    as metrics do; anything else (a float, None, a list) is refused: a label names a series,
    a measurement belongs in the values.
    """
    if not isinstance(labels, Mapping):
        raise ValidationError(
            "labels", f"expected a mapping of label name to value, got {show(labels)}"
        )
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_RE.fullmatch(key) or key.startswith("__"):
            raise ValidationError(
                "labels",
                f"expected label names matching {LABEL_PATTERN} (not starting with '__'), "
                f"got {show(key)}",
            )
        if value.__class__ is str:
            out[key] = value
        elif isinstance(value, str):
            out[key] = str.__str__(value)
        elif isinstance(value, int):
            out[key] = str(value)
        else:
            raise ValidationError(
                "labels", f"the value of {key!r} must be a str or an int, got {show(value)}"
            )
    return out, tuple(sorted(out.items()))


# ---------------------------------------------------------------------- values


def check_values(values: object) -> Any:
    """The values column to carry: a new list, a tuple (immutable, kept), or a C-contiguous
    copy of a 1-D NumPy array of an integer or float dtype."""
    cls = values.__class__
    if cls is list or cls is tuple:
        return _sequence_values(values)  # type: ignore[arg-type]
    if _is_array(values):
        return _array_values(values, "values")
    if isinstance(values, str | bytes | bytearray | Mapping):
        raise ValidationError(
            "values", f"expected a list or a 1-D NumPy array of numbers, got {show(values)}"
        )
    if hasattr(values, "__array__"):
        return _array_values(_as_array(values, "values"), "values")
    if isinstance(values, Sequence):
        return _sequence_values(list(values))
    raise ValidationError(
        "values", f"expected a list or a 1-D NumPy array of numbers, got {show(values)}"
    )


def _sequence_values(values: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
    kinds = set(map(type, values))
    if not kinds <= _PLAIN_NUMBERS:
        return _convert_values(values)
    if int in kinds:
        _check_int_range(values)
    return values if values.__class__ is tuple else values.copy()  # type: ignore[union-attr]


def _check_int_range(values: Sequence[Any]) -> None:
    for index, value in enumerate(values):
        if value.__class__ is int and not _INT_MIN <= value < _INT_MAX:
            raise ValidationError(
                "values",
                f"values[{index}] is an integer beyond 64 bits ({value}); pass it as a float",
            )


def _convert_values(values: Sequence[Any]) -> list[Any]:
    """Slow path: NumPy scalars, Fractions and int/float subclasses become plain numbers;
    anything else is named with its index."""
    out: list[Any] = []
    for index, value in enumerate(values):
        cls = value.__class__
        if cls is float or cls is int:
            out.append(value)
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValidationError("values", f"expected numbers, got {show(value)} at index {index}")
        elif isinstance(value, numbers.Integral):
            out.append(int(value))
        else:
            out.append(float(value))
    _check_int_range(out)
    return out


def _array_values(array: Any, argument: str) -> Any:
    if array.ndim != 1:
        raise ValidationError(
            argument, f"expected a 1-D array, got an array of shape {tuple(array.shape)}"
        )
    kind = array.dtype.kind
    if kind not in "iuf":
        hint = " (convert it with .astype(float))" if kind in "bO" else ""
        raise ValidationError(
            argument,
            f"expected an array of an integer or float dtype, got dtype {array.dtype}{hint}",
        )
    np = sys.modules["numpy"]
    return np.array(array, copy=True, order="C", subok=False)


# ---------------------------------------------------------------------- steps


def check_first_step(first_step: object, argument: str = "first_step") -> int:
    """A step given on its own (``first_step``, ``set_last_step``'s ``step``): an int >= 0."""
    if isinstance(first_step, bool) or not isinstance(first_step, numbers.Integral):
        raise ValidationError(argument, f"expected an int >= 0, got {show(first_step)}")
    value = int(first_step)
    if not 0 <= value < _STEP_MAX:
        raise ValidationError(argument, f"expected an int >= 0, got {value}")
    return value


def _length(argument: str, column: Any, count: int, what: str) -> None:
    got = len(column)
    if got != count:
        raise ValidationError(
            argument,
            f"expected {count} {what}, one per value, got {got} (values has {count})",
        )


def check_steps(steps: object, count: int) -> tuple[Any, int, int]:
    """The steps column (a copy), its first and its last step.

    Checked here: integers, one per value, >= 0, strictly increasing. Whether the first step
    comes after the series' last one is checked by the caller, under its lock. With no
    values, first and last are -1.
    """
    if count == 0 and isinstance(steps, range | list | tuple) and not steps:
        return steps, -1, -1
    if steps.__class__ is range:
        return _range_steps(steps, count)
    if steps.__class__ is list or steps.__class__ is tuple:
        return _sequence_steps(steps, count)
    if _is_array(steps):
        return _array_steps(steps, count)
    if isinstance(steps, str | bytes | bytearray | Mapping):
        raise ValidationError("steps", f"expected a list or an array of ints, got {show(steps)}")
    if hasattr(steps, "__array__"):
        return _array_steps(_as_array(steps, "steps"), count)
    if isinstance(steps, Sequence):
        return _sequence_steps(list(steps), count)
    raise ValidationError("steps", f"expected a list or an array of ints, got {show(steps)}")


def _range_steps(steps: range, count: int) -> tuple[range, int, int]:
    _length("steps", steps, count, "steps")
    if steps.step <= 0 and count > 1:
        raise ValidationError("steps", f"must strictly increase, got {steps!r}")
    if steps.start < 0 or steps[-1] >= _STEP_MAX:
        raise ValidationError("steps", f"expected ints from 0 to 2**63-1, got {steps!r}")
    return steps, steps.start, steps[-1]


def _sequence_steps(steps: Sequence[Any], count: int) -> tuple[Any, int, int]:
    _length("steps", steps, count, "steps")
    if set(map(type, steps)) != _INTS:
        steps = _convert_ints(steps, "steps")
    elif steps.__class__ is list:
        steps = steps.copy()
    if not all(map(operator.lt, steps, steps[1:])):
        index = next(i for i in range(1, count) if not steps[i - 1] < steps[i])
        raise ValidationError(
            "steps",
            f"must strictly increase, got {steps[index - 1]} then {steps[index]} at index {index}",
        )
    first, last = steps[0], steps[-1]
    if first < 0 or last >= _STEP_MAX:
        raise ValidationError(
            "steps", f"expected ints from 0 to 2**63-1, got {first if first < 0 else last}"
        )
    return steps, first, last


def _convert_ints(column: Sequence[Any], argument: str) -> list[int]:
    out: list[int] = []
    for index, value in enumerate(column):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValidationError(argument, f"expected ints, got {show(value)} at index {index}")
        out.append(int(value))
    return out


def _array_steps(steps: Any, count: int) -> tuple[Any, int, int]:
    if steps.ndim != 1:
        raise ValidationError(
            "steps", f"expected a 1-D array, got an array of shape {tuple(steps.shape)}"
        )
    if steps.dtype.kind not in "iu":
        raise ValidationError(
            "steps", f"expected an array of an integer dtype, got dtype {steps.dtype}"
        )
    _length("steps", steps, count, "steps")
    np = sys.modules["numpy"]
    if count == 0:
        return np.zeros(0, dtype=np.int64), -1, -1
    if count > 1:
        rising = np.diff(steps) > 0
        if not rising.all():
            index = int(np.argmin(rising)) + 1
            raise ValidationError(
                "steps",
                f"must strictly increase, got {steps[index - 1]} then {steps[index]} "
                f"at index {index}",
            )
    first, last = int(steps[0]), int(steps[-1])
    if first < 0 or last >= _STEP_MAX:
        raise ValidationError(
            "steps", f"expected ints from 0 to 2**63-1, got {first if first < 0 else last}"
        )
    return np.array(steps, dtype=np.int64, copy=True, order="C", subok=False), first, last


# ---------------------------------------------------------------------- times


def check_timestamp(timestamp: object) -> int:
    if timestamp.__class__ is int and timestamp >= 0:
        return timestamp
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral):
        raise ValidationError(
            "timestamp",
            f"expected integer nanoseconds since the Unix epoch (time.time_ns()), "
            f"got {show(timestamp)}",
        )
    value = int(timestamp)
    if not 0 <= value < _STEP_MAX:
        raise ValidationError(
            "timestamp", f"expected integer nanoseconds since the Unix epoch, got {value}"
        )
    return value


def check_timestamps(timestamps: object, count: int) -> Any:
    """Per-point times: integer nanoseconds since the Unix epoch (any order), or a NumPy
    ``datetime64`` array (converted to nanoseconds)."""
    if timestamps.__class__ is list or timestamps.__class__ is tuple:
        column: Sequence[Any] = timestamps
        _length("timestamps", column, count, "timestamps")
        if set(map(type, column)) != _INTS:
            column = _convert_ints(column, "timestamps")
        elif column.__class__ is list:
            column = column.copy()
        if column and not (min(column) >= 0 and max(column) < _STEP_MAX):
            raise ValidationError(
                "timestamps", "expected integer nanoseconds since the Unix epoch (>= 0)"
            )
        return column
    if _is_array(timestamps) or (
        hasattr(timestamps, "__array__") and not isinstance(timestamps, str | bytes)
    ):
        array = timestamps if _is_array(timestamps) else _as_array(timestamps, "timestamps")
        return _array_timestamps(array, count)
    raise ValidationError(
        "timestamps",
        f"expected a list or an array of integer nanoseconds, got {show(timestamps)}",
    )


def _array_timestamps(array: Any, count: int) -> Any:
    np = sys.modules["numpy"]
    if array.ndim != 1:
        raise ValidationError(
            "timestamps", f"expected a 1-D array, got an array of shape {tuple(array.shape)}"
        )
    kind = array.dtype.kind
    if kind == "M":
        array = array.astype("datetime64[ns]").view(np.int64)
    elif kind not in "iu":
        raise ValidationError(
            "timestamps",
            f"expected integer nanoseconds or datetime64, got dtype {array.dtype}",
        )
    _length("timestamps", array, count, "timestamps")
    if count and not (array.min() >= 0 and int(array.max()) < _STEP_MAX):
        raise ValidationError(
            "timestamps", "expected integer nanoseconds since the Unix epoch (>= 0)"
        )
    return np.array(array, dtype=np.int64, copy=True, order="C", subok=False)
