"""Metrics: ``pa.metrics``, the default telemetry instance's metrics registry.

::

    import pontem_async as pa

    requests = pa.metrics.counter("requests", "Requests served", labels=["route"])
    requests.inc(labels={"route": "/a"})
    home = requests.labels(route="/")          # a bound child, for hot loops
    home.inc()

    pa.metrics.count("frames")                  # pontem's shortcuts declare at first use
    pa.metrics.record("payload", 512, unit="By")
    pa.metrics.set_gauge("queue_depth", 3)
    with pa.metrics.timer("inference"): ...     # also `async with`, and @pa.metrics.timer(...)

    print(pa.metrics.exposition())              # OpenMetrics text of everything

Types: ``counter`` (``inc``), ``gauge`` (``set``/``inc``/``dec``), ``histogram(buckets=...)`` and
``summary`` (``observe``), ``info`` (``info({...})``), ``enum(states=[...])`` (``state(...)``).
Every type declares its label names; each update names all of them (``labels={...}`` on the
metric, or once in ``metric.labels(...)``). Declaring a name again with the same type, labels
and unit returns the same object; a conflicting declaration raises ValueError naming the
conflict.

Values live in memory (counters, histograms and summaries cumulative from each series' start
time; gauges, info and enum the last value set) and are exported as ``MetricRecord`` s every
``metrics.export_interval`` seconds to the handlers whose ``kinds`` include ``metric``, and once
more when the telemetry shuts down. An update never does I/O and never raises for valid
arguments; invalid ones raise TypeError/ValueError at the call site.

Rules worth knowing (the why is in ``pontem_async._metric_values``):

- names follow Prometheus and may contain dots (``model.inference``), written ``_`` in the
  exposition; label names likewise (``http.route``);
- label values are ``str``; ``int`` (and ``bool``) values are accepted and ``str()``-ed, so
  ``labels={"code": 200}`` works; other types raise TypeError. A ``str`` is the fast path;
- counters take finite increments >= 0; histograms and summaries finite observations; gauges
  any number (NaN and infinities included); ``bool`` is never a metric value;
- ``name_limit`` / ``label_sets_limit`` (configuration section ``metrics``) cap names and series
  per metric: what is beyond is dropped, counted in ``pontem.dropped_records`` and
  ``registry().stats()``, and warned about once per metric on the ``pontem_async`` logger;
- reconfiguring the default instance (``pa.init``/``pa.dict_config`` again) keeps the same
  registry, with its caps updated: metric objects already held keep working and counting.

pontem's shortcuts keep pontem's calls working: ``count(name, value=1, *, unit="", **labels)``,
``record(name, value, *, unit="", boundaries=None, **labels)`` (a histogram with
OpenTelemetry's default millisecond bounds), ``set_gauge(name, value, *, unit="", **labels)``,
``timer(name, *, unit="ms", boundaries=None, **labels)``. The first call declares the metric
with its keyword arguments' names as labels; later calls must use the same names. ``name`` and
``value`` are positional-only, so ``name=``/``value=`` are usable as label names.

Numeric series (``_series``): ``series(name, values, *, steps=None, first_step=None,
timestamps=None, timestamp=None, labels=None, scale="step", unit="")`` logs many points of one
series per call — a list or a 1-D NumPy array, carried as columns to one ``series`` record —
with steps continuing after the series' last step when omitted. ``get_last_step(name, labels)``
returns that step, ``set_last_step(name, step, labels)`` seeds it when a job resumes, and
``resume_steps(path)`` seeds every series from the JSONL a previous run wrote. Bad arguments
raise :class:`~pontem_async.ValidationError` naming the argument (the rules are in
``pontem_async._series_validate``). ``series_log(telemetry)`` gives another instance's.

The module functions below are bound methods of the default registry (which never changes, see
above): a wrapper function would cost a frame and a ``**labels`` repack on every update.
"""

from __future__ import annotations

from pontem_async._exposition import CONTENT_TYPES, ExpositionFormat
from pontem_async._metric_base import Metric, Series
from pontem_async._metric_drops import DROPPED_RECORDS
from pontem_async._metric_histogram import Histogram, Summary
from pontem_async._metric_states import Enum, Info
from pontem_async._metric_types import Counter, Gauge
from pontem_async._registry import MetricsRegistry
from pontem_async._series import SeriesLog, series_log
from pontem_async._timer import Timer
from pontem_async.telemetry import get_default as _get_default

__all__ = [
    "CONTENT_TYPES",
    "DROPPED_RECORDS",
    "Counter",
    "Enum",
    "ExpositionFormat",
    "Gauge",
    "Histogram",
    "Info",
    "Metric",
    "MetricsRegistry",
    "Series",
    "SeriesLog",
    "Summary",
    "Timer",
    "count",
    "counter",
    "enum",
    "exposition",
    "gauge",
    "get_last_step",
    "histogram",
    "info",
    "record",
    "registry",
    "resume_steps",
    "series",
    "series_log",
    "set_gauge",
    "set_last_step",
    "summary",
    "timer",
]

_registry: MetricsRegistry = _get_default().metrics


def registry() -> MetricsRegistry:
    """The default instance's registry (the same object for the life of the process)."""
    return _get_default().metrics


def exposition(format: ExpositionFormat = "openmetrics") -> str:
    """Everything in the default registry as Prometheus exposition text.

    Args:
        format: ``openmetrics`` (OpenMetrics 1.0, ends with ``# EOF``) or ``text`` (the 0.0.4
            format); :data:`CONTENT_TYPES` gives each one's HTTP ``Content-Type``.

    Raises:
        ValueError: an unknown ``format``.
    """
    return _get_default().metrics.exposition(format)


counter = _registry.counter
gauge = _registry.gauge
histogram = _registry.histogram
summary = _registry.summary
info = _registry.info
enum = _registry.enum
count = _registry.count
record = _registry.record
set_gauge = _registry.set_gauge
timer = _registry.timer

_series_log: SeriesLog = series_log(_get_default())
series = _series_log.series
get_last_step = _series_log.get_last_step
set_last_step = _series_log.set_last_step
resume_steps = _series_log.resume_steps
