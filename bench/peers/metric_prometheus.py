"""prometheus_client, the metrics library phanos users know: in-process instruments.

Facts from its source: every ``inc``/``set``/``observe`` takes the value's mutex; ``.labels()``
looks the child up in the parent's dict under the parent's lock (creating it on first use), so
the per-call ``.labels(...).inc()`` form pays a lookup that a child bound once does not.
Instruments are registered in the default ``REGISTRY``; nothing is exported during the run.
There is no per-call labels-dict form: that row of the report shows ``.labels(...).inc()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from peers._prof_base import PROM_BUCKETS, MetricPeer

Loop = Callable[[Sequence[float]], None]


class PrometheusMetrics(MetricPeer):
    label = "prometheus_client"
    packages = ("prometheus-client",)
    config = (
        "Counter('frames'), Counter('requests', labelnames=['route', 'code']), "
        "Histogram('latency', buckets=<its defaults>), Gauge('queue_depth'), default registry"
    )
    ops = ("count", "labels_call", "bound", "observe", "gauge")
    calls: ClassVar[dict[str, str]] = {
        "count": "frames.inc()",
        "labels_call": "c.labels(route=..., code=...).inc()",
        "labels_dict": "c.labels(route=..., code=...).inc()",
        "bound": "child.inc()",
        "observe": "h.observe(v)",
        "gauge": "g.set(v)",
    }

    equivalents: ClassVar[dict[str, str]] = {"labels_dict": "labels_call"}

    def setup(self, workdir: str) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self._frames = Counter("frames", "frames seen")
        self._counter = Counter("requests", "requests served", ["route", "code"])
        self._child = self._counter.labels(route="/checkout", code="200")
        self._histogram = Histogram("latency", "latency", buckets=PROM_BUCKETS)
        self._gauge_ = Gauge("queue_depth", "queue depth")

    def loop(self, op: str) -> Loop:
        return getattr(self, f"_{op}")  # type: ignore[no-any-return]

    def _count(self, values: Sequence[float]) -> None:
        inc = self._frames.inc
        for _ in values:
            inc()

    def _labels_call(self, values: Sequence[float]) -> None:
        labels = self._counter.labels
        for _ in values:
            labels(route="/checkout", code="200").inc()

    def _bound(self, values: Sequence[float]) -> None:
        inc = self._child.inc
        for _ in values:
            inc()

    def _observe(self, values: Sequence[float]) -> None:
        observe = self._histogram.observe
        for v in values:
            observe(v)

    def _gauge(self, values: Sequence[float]) -> None:
        set_ = self._gauge_.set
        for v in values:
            set_(v)

    def finish(self) -> None:
        return None
