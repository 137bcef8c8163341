"""Numeric series: many points of one metric per call, for training loops and simulations.

::

    pa.metrics.series("loss", losses, labels={"env": "0"})      # steps 0..n-1, then n..
    pa.metrics.series("reward", rewards, steps=episode_ids, scale="episode")
    pa.metrics.get_last_step("loss", {"env": "0"})               # n-1

One call makes one :class:`~pontem_async.records.SeriesRecord` holding the points as columns
(``values``, ``steps``, optional ``timestamps``) and hands it to the pipeline like any record; the
JSONL line (``_series_encode``) carries the columns as they are, and a NumPy array is serialized
by orjson in C. The caller pays for validation (whole-array NumPy operations, see
``_series_validate``), one copy of each column, one lock round trip and one record: a few
microseconds per call whatever the number of points.

**Steps.** Every series — a name plus a label set, within a run — remembers its last step.
Omitted steps continue after it (``range(last + 1, last + 1 + n)``, or from ``first_step``);
given steps must strictly increase and start after it. The memory is per
:class:`~pontem_async.Telemetry` instance and lives as long as the process: reconfiguring
(``pa.init`` again) keeps it. A run (``pa.start_run``) has series of its own, so each run of a
sweep made in one process starts at step 0; outside runs there is one set of series.
A restarted job seeds it with :meth:`SeriesLog.set_last_step`, or from the JSONL it wrote
before with :meth:`SeriesLog.resume_steps`, so its curves continue instead of starting over.

**Threads.** Calls from any thread are safe: the check "first step after the last one" and the
update of the last step happen under one lock, so two threads feeding the same series never
interleave their steps out of order (the one that loses the race gets a ValidationError when it
gave explicit steps, or the next free steps when it did not).

A record refused by a full queue (overflow ``raise``) gives its steps back, so the next call
reuses them; dropped records (``drop_oldest``/``drop_newest``) keep their steps used, as gaps
that ``pontem.dropped_records`` accounts for.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pontem_async import _series_encode  # noqa: F401 - registers the "series" JSONL encoder
from pontem_async._metric_values import check_unit
from pontem_async._series_validate import (
    check_first_step,
    check_labels,
    check_name,
    check_scale,
    check_steps,
    check_timestamp,
    check_timestamps,
    check_values,
)
from pontem_async.errors import QueueFullError, ValidationError
from pontem_async.events import RUN_ID_ATTRIBUTE
from pontem_async.records import SeriesRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = ["SeriesKey", "SeriesLog", "series_log"]

SeriesKey = tuple[str | None, str, tuple[tuple[str, str], ...]]
"""A series' identity: the run id (None outside runs), its name and its sorted label items."""

_time_ns = time.time_ns
_new_record = tuple.__new__
_CACHE_LIMIT = 4096
"""Most label sets / names whose checks are remembered (then the caches start over)."""
_logs: weakref.WeakKeyDictionary[Telemetry, SeriesLog] = weakref.WeakKeyDictionary()
_logs_lock = threading.Lock()


def series_log(telemetry: Telemetry) -> SeriesLog:
    """The :class:`SeriesLog` of ``telemetry`` (one per instance, made on first use)."""
    log = _logs.get(telemetry)
    if log is None:
        with _logs_lock:
            log = _logs.get(telemetry)
            if log is None:
                log = _logs[telemetry] = SeriesLog(telemetry)
    return log


class SeriesLog:
    """Logs series through one :class:`~pontem_async.Telemetry` and remembers each series'
    last step. ``pa.metrics.series`` and friends are the default instance's; get another
    instance's with :func:`series_log`."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._last: dict[SeriesKey, int] = {}
        self._names: set[str] = set()
        self._labels: dict[Any, tuple[dict[str, str], tuple[tuple[str, str], ...]]] = {}

    # ------------------------------------------------------------------ the call

    def series(
        self,
        name: str,
        values: Any,
        *,
        steps: Any = None,
        first_step: int | None = None,
        timestamps: Any = None,
        timestamp: int | None = None,
        labels: Mapping[str, str | int] | None = None,
        scale: str = "step",
        unit: str = "",
    ) -> int | None:
        """Log the points ``values`` of the series ``name`` (+ ``labels``) in one record.

        Args:
            name: the series name (``loss``, ``train/loss``, ``model.loss``).
            values: the points: a list of numbers or a 1-D NumPy array of an integer or float
                dtype (copied, so the caller may reuse its buffer). NaN and ±inf are kept.
            steps: one int per value, >= 0, strictly increasing, all after the series' last
                step; omitted, they continue after it (from 0 for a new series).
            first_step: the first of the omitted steps (the rest follow one by one); must
                also come after the last step. Not with ``steps``.
            timestamps: per-point times, integer ns since the Unix epoch (or a NumPy
                ``datetime64`` array); omitted, every point is at ``timestamp``.
            timestamp: the call's time in ns since the Unix epoch (default: now).
            labels: label name -> str (or int) value; each label set is its own series,
                with its own steps.
            scale: what the steps count: ``step`` (default), ``epoch``, ``episode``...
            unit: the values' UCUM unit (``s``, ``By``), may be empty.

        Returns:
            The series' last step after this call, as :meth:`get_last_step` gives it. With
            no values the call records nothing and returns the last step unchanged (None for
            a series that has none).

        Raises:
            ValidationError: naming the argument: values not numbers or not 1-D, lengths of
                ``steps``/``timestamps`` not matching ``values``, steps not increasing or not
                after the last step, a bad name, label, scale, unit or time.
        """
        if name.__class__ is not str or name not in self._names:
            name = self._new_name(name)
        if labels:
            try:
                stored, label_key = self._labels[tuple(labels.items())]
            except (KeyError, TypeError, AttributeError):
                stored, label_key = self._new_labels(labels)
        else:
            if labels is not None and not isinstance(labels, Mapping):
                check_labels(labels)
            stored, label_key = {}, ()
        column = check_values(values)
        count = len(column)
        if scale != "step":
            scale = check_scale(scale)
        if unit:
            unit = _unit(unit)
        ts = _time_ns() if timestamp is None else check_timestamp(timestamp)
        times = None if timestamps is None else check_timestamps(timestamps, count)
        resource = self._telemetry.resource
        key = (resource.get(RUN_ID_ATTRIBUTE), name, label_key)
        if steps is not None:
            if first_step is not None:
                raise ValidationError("first_step", "give either steps or first_step, not both")
            step_column, first, last = check_steps(steps, count)
            if count == 0:
                return self._last.get(key)
            with self._lock:
                previous = self._last.get(key, -1)
                if first <= previous:
                    raise ValidationError(
                        "steps",
                        f"must come after the last step of series {_show_key(key)}, "
                        f"{previous}, got {first}",
                    )
                self._last[key] = last
        else:
            start = None if first_step is None else check_first_step(first_step)
            if count == 0:
                return self._last.get(key)
            with self._lock:
                previous = self._last.get(key, -1)
                if start is None:
                    first = previous + 1
                elif start <= previous:
                    raise ValidationError(
                        "first_step",
                        f"must come after the last step of series {_show_key(key)}, "
                        f"{previous}, got {start}",
                    )
                else:
                    first = start
                last = first + count - 1
                self._last[key] = last
            step_column = range(first, last + 1)
        tel = self._telemetry
        # tuple.__new__ directly: SeriesRecord's field order, without a Python-level __new__
        record = _new_record(
            SeriesRecord, (ts, name, column, step_column, times, stored, unit, resource, scale)
        )
        try:
            tel._submit(record)
        except QueueFullError:
            self._give_back(key, last, previous)
            raise
        except Exception as exc:  # telemetry never breaks the application
            tel._internal_error("series", exc)
        return last

    def _new_name(self, name: object) -> str:
        checked = check_name(name)
        if len(self._names) >= _CACHE_LIMIT:
            self._names.clear()
        self._names.add(checked)
        return checked

    def _new_labels(self, labels: object) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
        stored, key = check_labels(labels)
        items = tuple(labels.items())  # type: ignore[attr-defined]
        # only all-str label sets are remembered: a lookup with {"k": 1.0} must never hit an
        # entry made for {"k": 1} (equal keys), which would skip the refusal of float values
        if all(value.__class__ is str for _, value in items):
            if len(self._labels) >= _CACHE_LIMIT:
                self._labels.clear()
            self._labels[items] = (stored, key)
        return stored, key

    def _give_back(self, key: SeriesKey, last: int, previous: int) -> None:
        with self._lock:
            if self._last.get(key) == last:
                if previous < 0:
                    del self._last[key]
                else:
                    self._last[key] = previous

    # ------------------------------------------------------------------ last steps

    def _key(self, name: str, labels: Mapping[str, str | int] | None) -> SeriesKey:
        name = check_name(name)
        label_key = check_labels(labels)[1] if labels else ()
        if labels is not None and not isinstance(labels, Mapping):
            check_labels(labels)
        return self._telemetry.resource.get(RUN_ID_ATTRIBUTE), name, label_key

    def get_last_step(self, name: str, labels: Mapping[str, str | int] | None = None) -> int | None:
        """The last step logged (or seeded) for the series ``name`` + ``labels`` in the
        current run; None when it has none yet."""
        return self._last.get(self._key(name, labels))

    def set_last_step(
        self, name: str, step: int | None, labels: Mapping[str, str | int] | None = None
    ) -> None:
        """Seed (or reset) the last step of a series: the next omitted steps start at
        ``step + 1``, and given steps must come after ``step``. ``None`` forgets the series,
        so it starts again from 0.

        Use it when a job resumes from a checkpoint: ``set_last_step("loss", ckpt.step)``.
        """
        key = self._key(name, labels)
        value = None if step is None else check_first_step(step, "step")
        with self._lock:
            if value is None:
                self._last.pop(key, None)
            else:
                self._last[key] = value

    def last_steps(self) -> dict[SeriesKey, int]:
        """A copy of every series' last step, keyed by ``(run id, name, sorted label items)``."""
        with self._lock:
            return dict(self._last)

    def resume_steps(self, path: str | os.PathLike[str]) -> int:
        """Seed the last steps from JSONL written before (a file, a directory, or a base name
        with its rotated and gzipped siblings, as ``pontem-async tail`` reads them).

        For every series found (in the run its lines name in their resource, so resume the run
        under the same id), the last step becomes the largest step written, unless this
        process already went further. Unreadable lines are skipped. Returns how many series
        were seeded.

        Raises:
            FileNotFoundError: ``path`` names no readable file.
        """
        import io

        from pontem_async._jsonl_files import TailError, read_records

        found: dict[SeriesKey, int] = {}
        try:
            for line in read_records(os.fspath(path), io.StringIO()):
                key, last = _last_of_line(line)
                if key is not None and last > found.get(key, -1):
                    found[key] = last
        except TailError as exc:
            raise FileNotFoundError(str(exc)) from None
        with self._lock:
            for key, last in found.items():
                if last > self._last.get(key, -1):
                    self._last[key] = last
        return len(found)

    def __repr__(self) -> str:
        return f"<SeriesLog series={len(self._last)}>"


def _last_of_line(line: Mapping[str, Any]) -> tuple[SeriesKey | None, int]:
    """The series key and last step of one parsed JSONL line (None when not a series)."""
    if line.get("kind") != "series":
        return None, -1
    name, labels, steps = line.get("name"), line.get("labels"), line.get("steps")
    if not isinstance(name, str) or not isinstance(labels, dict) or not isinstance(steps, list):
        return None, -1
    if not steps or not isinstance(steps[-1], int):
        return None, -1
    items = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
    resource = line.get("resource")
    run = resource.get(RUN_ID_ATTRIBUTE) if isinstance(resource, dict) else None
    return (run if isinstance(run, str) else None, name, items), steps[-1]


def _unit(unit: object) -> str:
    try:
        return check_unit(unit)
    except (TypeError, ValueError) as exc:  # the metrics API's check, as a ValidationError
        raise ValidationError("unit", str(exc).removeprefix("unit: ")) from None


def _show_key(key: SeriesKey) -> str:
    run, name, items = key
    text = repr(name) if not items else f"{name!r} {dict(items)}"
    return text if run is None else f"{text} (run {run!r})"
