"""pontem-async's metrics registry (``pontem_async.metrics``), default telemetry.

``pa.init(service_name="bench", handlers=[<Handler whose emit() does nothing>])`` in a
synchronous program (the pipeline's loop runs in a daemon thread and exports the registry
periodically); instruments are created once, then updated in the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from peers._prof_base import PROM_BUCKETS, MetricPeer
from peers.prof_pa import null_handler

Loop = Callable[[Sequence[float]], None]


class PontemAsyncMetrics(MetricPeer):
    label = "pontem-async"
    packages = ("pontem-async",)
    config = (
        "pa.init(service_name='bench', handlers=[<Handler whose emit() does nothing>]); "
        "counter('requests', labels=['route', 'code']), histogram('latency', buckets=<prometheus "
        "defaults>) created once"
    )
    ops = ("count", "labels_dict", "labels_call", "bound", "observe", "gauge")
    calls: ClassVar[dict[str, str]] = {
        "count": 'metrics.count("frames")',
        "labels_dict": 'c.inc(labels={"route": ..., "code": ...})',
        "labels_call": "c.labels(route=..., code=...).inc()",
        "bound": "child.inc()",
        "observe": "h.observe(v)",
        "gauge": 'metrics.set_gauge("queue_depth", v)',
    }

    def setup(self, workdir: str) -> None:
        import pontem_async as pa
        from pontem_async import metrics

        self._handler = null_handler()
        self._telemetry = pa.init(
            service_name="bench", handlers=[self._handler], install_signal_handlers=False
        )
        self._metrics = metrics
        self._counter = metrics.counter("requests", labels=["route", "code"])
        self._child = self._counter.labels(route="/checkout", code="200")
        self._histogram = metrics.histogram("latency", buckets=PROM_BUCKETS)

    def loop(self, op: str) -> Loop:
        return getattr(self, f"_{op}")  # type: ignore[no-any-return]

    def _count(self, values: Sequence[float]) -> None:
        count = self._metrics.count
        for _ in values:
            count("frames")

    def _labels_dict(self, values: Sequence[float]) -> None:
        inc = self._counter.inc
        for _ in values:
            inc(labels={"route": "/checkout", "code": "200"})

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
        set_gauge = self._metrics.set_gauge
        for v in values:
            set_gauge("queue_depth", v)

    def finish(self) -> None:
        self._report = str(self._telemetry.shutdown_sync(timeout=60))

    def details(self) -> dict[str, Any]:
        return {
            "stats": self._telemetry.stats(),
            "received": self._handler.received,
            "shutdown": getattr(self, "_report", None),
        }
