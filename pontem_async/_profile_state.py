"""What a profiled call reads: the profiler's settings, metrics and hooks, compiled into one object.

A :class:`State` is built whenever something it depends on changes (the telemetry's
``profiler_settings``, ``handle_records``, a hook, a deleted metric) and replaced as a whole, so
the hot path reads ``profiler._state`` once and needs no lock: a call that started with the old
state finishes with it.

The two profile metrics keep phanos' names (``TIME_PROFILER``/``RESPONSE_SIZE`` in
``phanos/publisher.py``), so Prometheus dashboards built on phanos keep their series names:

- ``time_profiler``: histogram of every profiled call's duration in milliseconds, labelled
  ``method`` (the method path) and, with ``error_raised_label``, ``error_raised`` (``"True"``
  when the call raised out of the decorated function, else ``"False"``; phanos' spelling);
- ``response_size``: histogram of a root call's return value in bytes (off by default). As in
  phanos it measures roots only (the "response" of an endpoint or job); unlike phanos
  (``sys.getsizeof``, the Python object's memory) it counts the bytes that would be sent: the
  length of ``bytes``/``bytearray``, the UTF-8 length of ``str``, an aiohttp response's body,
  or the orjson encoding of a JSON-able value. ``None`` and unknown types are skipped.
"""

from __future__ import annotations

import sys
import time as _time
from collections.abc import Callable, Sized
from typing import TYPE_CHECKING, Any

import orjson

from pontem_async._calltree import (
    DURATION,
    NAME,
    RESOURCE,
    ROOT_FIELDS,
    START,
    root_record,
)
from pontem_async._profile_times import attach

if TYPE_CHECKING:
    from pontem_async._calltree import RootNode
    from pontem_async._config_schema import ProfilerSettings
    from pontem_async._profile_times import PathTimes
    from pontem_async._registry import MetricsRegistry
    from pontem_async.metrics import Histogram
    from pontem_async.profiler import Profiler
    from pontem_async.telemetry import Telemetry

__all__ = [
    "HOOK_NAMES",
    "RESPONSE_SIZE",
    "SIZE_BUCKETS",
    "TIME_BUCKETS_MS",
    "TIME_PROFILER",
    "State",
    "build_state",
    "response_size",
]

TIME_PROFILER = "time_profiler"
RESPONSE_SIZE = "response_size"
TIME_BUCKETS_MS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
)  # fmt: skip
SIZE_BUCKETS: tuple[float, ...] = tuple(float(4**n) for n in range(3, 14))  # 64 B .. 64 MiB
HOOK_NAMES = ("before_func", "after_func", "before_root_func", "after_root_func")
PROFILE_UNIT = ""
"""Declared without a unit on purpose: the exposition appends a unit to the family name
(``time_profiler_ms``), and phanos' dashboards query ``time_profiler``. The descriptions say
the unit (milliseconds, bytes) instead."""
_PROFILE_LABELS = frozenset({"method", "error_raised"})
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_perf_ns = _time.perf_counter_ns

BeforeHook = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], None]
"""phanos' ``before_func``/``before_root_func``: ``(func, args, kwargs)``."""
AfterHook = Callable[[Any, tuple[Any, ...], dict[str, Any]], None]
"""phanos' ``after_func``/``after_root_func``: ``(result, args, kwargs)``; ``result`` is None
when the call raised (phanos calls them in a ``finally`` too)."""


def response_size(value: Any) -> int | None:
    """Bytes ``value`` makes as a response, or None when it has no meaningful size."""
    cls = value.__class__
    if cls is bytes or cls is bytearray:
        return len(value)
    if cls is str:
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if value is None:
        return None
    web = sys.modules.get("aiohttp.web")  # only if the application uses aiohttp
    if web is not None and isinstance(value, web.StreamResponse):
        body = getattr(value, "body", None)
        if isinstance(body, bytes | bytearray):
            return len(body)
        size = getattr(body, "size", None)
        if isinstance(size, int):
            return size
        length = value.content_length
        return length if isinstance(length, int) else None
    if isinstance(value, bytes | bytearray | memoryview):
        return memoryview(value).nbytes
    if isinstance(value, str):
        return len(str.__str__(value).encode("utf-8", "surrogatepass"))
    try:
        return len(orjson.dumps(value, option=_JSON_OPTIONS))
    except (TypeError, orjson.JSONEncodeError):
        return None


class State:
    """The compiled profiler state; see the module docstring."""

    __slots__ = (
        "after_func",
        "after_root_func",
        "before_func",
        "before_root_func",
        "enabled",
        "error_label",
        "generation",
        "hooked",
        "live_trees",
        "pending",
        "pipeline",
        "profiler",
        "puts",
        "queue",
        "settings",
        "size",
        "size_series",
        "telemetry",
        "time",
        "time_err",
        "time_ok",
        "waiting",
    )

    def __init__(
        self,
        profiler: Profiler,
        telemetry: Telemetry,
        settings: ProfilerSettings,
        enabled: bool,
        hooks: dict[str, Callable[..., Any] | None],
        time: Histogram | None,
        size: Histogram | None,
    ) -> None:
        self.profiler = profiler
        self.telemetry = telemetry
        self.settings = settings
        self.enabled = enabled
        self.error_label = settings.error_raised_label
        self.before_func = hooks["before_func"]
        self.after_func = hooks["after_func"]
        self.before_root_func = hooks["before_root_func"]
        self.after_root_func = hooks["after_root_func"]
        self.hooked = any(hooks.values())
        self.time = time
        self.size = size
        self.time_ok: dict[str, Any] = {}  # method path -> its time_profiler series
        self.time_err: dict[str, Any] = {} if self.error_label else self.time_ok
        self.size_series: dict[str, Any] = {}
        # Where a root's record goes: straight to the lanes that take profile records, minus
        # the pipeline's submit() frame; through telemetry._submit (which starts the pipeline,
        # counts records refused by a closed one, or is pa.testing.capture's collector) while
        # ``pipeline`` is None or closed.
        pipeline = telemetry._pipeline
        direct = pipeline.running and telemetry._submit == pipeline.submit
        self.pipeline = pipeline if direct else None
        self.puts = pipeline._targets["profile"]
        # A tree joins the queues live while the first of them holds less than a batch: the
        # consumer takes a batch once ``batch_size`` records wait, so a live tree normally
        # waits in no more than one batch. A live tree is several objects the cyclic GC visits
        # (its nodes) where a frozen one is tuples it stops tracking: past a batch (the
        # consumer is behind, a burst that never yields the loop) the caller freezes the tree.
        # A root without children is one object either way: it always joins live.
        lanes = pipeline._routes["profile"]
        self.queue: Sized = lanes[0].buf if lanes else ()
        self.live_trees = pipeline.options.batch_size
        self.generation = telemetry._generation
        self.pending = profiler._times
        self.waiting = profiler._times.waiting.append

    def _labels(self, path: str, failed: bool) -> dict[str, str]:
        if self.error_label:
            return {"method": path, "error_raised": "True" if failed else "False"}
        return {"method": path}

    def _cached(self, cache: dict[str, Any], hist: Histogram, path: str, failed: bool) -> Any:
        series = hist.labels(**self._labels(path, failed))
        if len(cache) < self.telemetry.metrics.label_sets_limit:  # recursion makes new paths
            cache[path] = series
        return series

    def time_series(self, path: str, failed: bool) -> Any:
        """The ``time_profiler`` series of ``path`` (cached per path: recursion makes ever new
        paths, so the cache stops at the registry's label-set limit)."""
        cache = self.time_err if failed else self.time_ok
        series = cache.get(path)
        if series is None:
            assert self.time is not None
            series = self._cached(cache, self.time, path, failed)
        return series

    def observe_time(self, path: str, failed: bool, duration_ns: int) -> None:
        """Count one call's duration in ``time_profiler`` at once (calls that raised, or ran
        with hooks; the others wait in the pending deque, see ``_profile_times``)."""
        self.time_series(path, failed).observe(duration_ns / 1e6)

    def observe_size(self, path: str, value: Any) -> None:
        size = response_size(value)
        if size is None or self.size is None:
            return
        series = self.size_series.get(path)
        if series is None:
            series = self._cached(self.size_series, self.size, path, False)
        series.observe(size)

    def end_root(self, node: RootNode, result: Any, path: PathTimes) -> None:
        """The common end of a root call (it returned; no hooks), in one Python frame.

        The wrappers call it instead of ``_Site.leave`` + ``finish_root``, minus two frames
        and the error and hook branches. While the pipeline runs, the live root goes into the
        handlers' queues as it is, and the consumer that takes it freezes its tree
        (:func:`~pontem_async._calltree.root_record`): the caller's part of a root's end is a
        duration and an append per handler. Otherwise (the pipeline not started or closed,
        ``pa.testing.capture``, this state stale) the record is built here and goes through
        ``telemetry._submit``. The duration goes to the root's ``path`` (``_profile_times``).
        Never raises, like ``leave``.
        """
        duration = _perf_ns() - node[START]
        node[DURATION] = duration  # from now on, no child is appended
        tel = self.telemetry
        stale = tel._generation != self.generation  # reconfigured, started, metric removed
        try:
            node[RESOURCE] = tel.resource
            pipeline = self.pipeline
            if stale or pipeline is None or pipeline._closed:
                tel._submit(root_record(node))  # not started, closed, captured, or stale
            elif len(node) == ROOT_FIELDS or len(self.queue) < self.live_trees:
                for put in self.puts:
                    put(node)  # type: ignore[arg-type]  # the lanes take roots for records
            else:
                record = root_record(node)
                for put in self.puts:
                    put(record)
        except Exception as exc:  # a failing submit never reaches the user's call
            tel._internal_error("profile", exc)
        if self.time is not None:  # PendingTimes (see there), inline: keep the copies equal
            durations = path.durations
            durations.append(duration)
            if not path.listed:
                path.listed = True
                self.waiting(path)
            pending = self.pending
            if len(durations) >= pending.threshold:
                pending.drain_soon(len(durations))
        if self.size is not None or stale:
            try:
                if self.size is not None:
                    self.observe_size(node[NAME], result)
                if stale:
                    self.profiler._refresh()
            except Exception as exc:  # telemetry never breaks the application
                tel._internal_error("profiler", exc)

    def _hook(self, name: str, hook: Callable[..., Any], *args: Any) -> None:
        try:
            hook(*args)
        except Exception as exc:  # a hook never breaks the user's call
            self.profiler._hook_failed(name, exc)

    def before(
        self, root: bool, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """phanos' order: ``before_root_func`` (roots only), then ``before_func``."""
        if root and self.before_root_func is not None:
            self._hook("before_root_func", self.before_root_func, func, args, kwargs)
        if self.before_func is not None:
            self._hook("before_func", self.before_func, func, args, kwargs)

    def after(self, root: bool, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """phanos' order: ``after_func``, then ``after_root_func`` (roots only)."""
        if self.after_func is not None:
            self._hook("after_func", self.after_func, result, args, kwargs)
        if root and self.after_root_func is not None:
            self._hook("after_root_func", self.after_root_func, result, args, kwargs)


def _declare(
    registry: MetricsRegistry,
    name: str,
    description: str,
    labels: list[str],
    buckets: tuple[float, ...],
) -> Histogram:
    existing = registry.get(name)
    if (
        existing is not None
        and existing.type == "histogram"
        and existing.unit == PROFILE_UNIT
        and set(existing.label_names) <= _PROFILE_LABELS
        and list(existing.label_names) != labels
    ):  # ours, declared under another error_raised_label setting
        registry.remove(name)
    return registry.histogram(name, description, unit=PROFILE_UNIT, labels=labels, buckets=buckets)


def build_state(
    profiler: Profiler,
    enabled: bool,
    hooks: dict[str, Callable[..., Any] | None],
    deleted: set[str],
) -> State:
    """Compile the profiler's state, declaring the profile metrics its settings ask for.

    A metric that cannot be declared (the name is taken by an unrelated metric) is reported
    once on the ``pontem_async`` logger and left out; profiling goes on without it.
    """
    telemetry = profiler.telemetry
    settings = telemetry.profiler_settings
    labels = ["method", "error_raised"] if settings.error_raised_label else ["method"]
    time = size = None
    registry = telemetry.metrics
    try:
        if settings.time_profile and TIME_PROFILER not in deleted:
            description = "Duration of profiled calls in milliseconds, by method path"
            time = _declare(registry, TIME_PROFILER, description, labels, TIME_BUCKETS_MS)
        if settings.response_size_profile and RESPONSE_SIZE not in deleted:
            description = "Size in bytes of what profiled root calls return, by method path"
            size = _declare(registry, RESPONSE_SIZE, description, labels, SIZE_BUCKETS)
        if time is not None:
            attach(time, profiler._times)  # reads of the histogram count what is pending
    except (TypeError, ValueError) as exc:
        telemetry._internal_error("profiler metrics", exc)
    return State(profiler, telemetry, settings, enabled, hooks, time, size)
