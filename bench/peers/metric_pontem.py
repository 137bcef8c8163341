"""pontem (the library pontem-async replaces): ``pontem.metrics.count``/``record``/``set_gauge``.

Facts from its source (pontem 0.10): each call builds a key from the name, unit and sorted
keyword attributes, then takes one module-wide ``threading.Lock`` to check the name against
its limit and update a dict of accumulators (a histogram accumulator bisects its OTel-default
boundaries). A writer thread wakes every second and POSTs the metrics as OTLP/JSON; the
endpoint is pinned to a closed loopback port so no name lookup or remote connection happens.
There are no instrument objects, so no ``.labels()`` and no bound-child form: those rows of
the report show ``count(name, **labels)``, its only labelled form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from peers._prof_base import MetricPeer

Loop = Callable[[Sequence[float]], None]


class PontemMetrics(MetricPeer):
    label = "pontem"
    packages = ("pontem",)
    config = (
        "pontem.init(service_name='bench', emit_dir=tmp, otlp_endpoint=<closed loopback port>); "
        "module-level count/record/set_gauge"
    )
    ops = ("count", "labels_dict", "observe", "gauge")
    calls: ClassVar[dict[str, str]] = {
        "count": 'metrics.count("frames")',
        "labels_dict": 'metrics.count("requests", route=..., code=...)',
        "labels_call": 'metrics.count("requests", route=..., code=...)',
        "bound": 'metrics.count("requests", route=..., code=...)',
        "observe": 'metrics.record("latency", v)',
        "gauge": 'metrics.set_gauge("queue_depth", v)',
    }

    equivalents: ClassVar[dict[str, str]] = {
        "labels_call": "labels_dict",
        "bound": "labels_dict",
    }

    def setup(self, workdir: str) -> None:
        import pontem

        pontem.init(service_name="bench", emit_dir=workdir, otlp_endpoint="http://127.0.0.1:9")
        self._metrics = pontem.metrics

    def loop(self, op: str) -> Loop:
        return getattr(self, f"_{op}")  # type: ignore[no-any-return]

    def _count(self, values: Sequence[float]) -> None:
        count = self._metrics.count
        for _ in values:
            count("frames")

    def _labels_dict(self, values: Sequence[float]) -> None:
        count = self._metrics.count
        for _ in values:
            count("requests", route="/checkout", code="200")

    def _observe(self, values: Sequence[float]) -> None:
        record = self._metrics.record
        for v in values:
            record("latency", v)

    def _gauge(self, values: Sequence[float]) -> None:
        set_gauge = self._metrics.set_gauge
        for v in values:
            set_gauge("queue_depth", v)

    def finish(self) -> None:
        import pontem

        pontem.shutdown()
