"""Accounting of metric updates refused at a cardinality cap, and ``pontem.dropped_records``.

DESIGN section 2: nothing is lost silently. A refused update is counted here (per reason, and
per metric for ``stats()``), the first refusal of each metric is warned about on the
``pontem_async`` logger, and every snapshot carries the counts as the counter
``pontem.dropped_records{handler, reason}``: ``handler="pontem.metrics"`` for the registry's own
drops, next to the pipeline's per-handler drops that the owning Telemetry supplies.

Memory stays bounded even when an application mints metric names without end: per-metric counts
and warnings are kept for the first 10,000 metrics that had drops; beyond that drops are still
counted per reason, just neither warned about nor counted per metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from pontem_async.records import MetricPoint, MetricRecord, Resource

__all__ = ["DROPPED_RECORDS", "REGISTRY_HANDLER", "DropCount", "DropLedger"]

_internal = logging.getLogger("pontem_async")

DROPPED_RECORDS = "pontem.dropped_records"
"""The framework counter of everything not delivered, labelled ``handler`` and ``reason``."""
REGISTRY_HANDLER = "pontem.metrics"
"""The ``handler`` label of updates the registry itself dropped at a cap."""
DropCount = tuple[str, str, int, int]
"""``(handler, reason, count, start_time_ns)``: one series of ``pontem.dropped_records``."""
_REMEMBERED = 10_000
_DESCRIPTION = "Records and metric updates not delivered, by handler and reason"


class DropLedger:
    """The registry's drop counters and once-per-metric warnings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_reason: dict[str, int] = {}
        self._by_metric: dict[str, dict[str, int]] = {}
        self._warned: set[str] = set()
        self.start_ns = time.time_ns()

    def clear(self) -> None:
        with self._lock:
            self._by_reason.clear()
            self._by_metric.clear()
            self._warned.clear()
            self.start_ns = time.time_ns()

    def warn_once(self, kind: str, name: str, reason: str, limit: int) -> None:
        """Warn about the first refusal of metric ``name`` (called outside any metric lock)."""
        with self._lock:
            if name in self._warned or len(self._warned) >= _REMEMBERED:
                return
            self._warned.add(name)
        if reason == "removed":
            _internal.warning(
                "pontem-async metrics: %s %r was removed from its registry; updates with new "
                "label sets are dropped (counted in %s)",
                kind,
                name,
                DROPPED_RECORDS,
            )
        elif reason == "name_limit":
            _internal.warning(
                "pontem-async metrics: name_limit (%d) reached; updates of the new metric %r "
                "are dropped (counted in %s)",
                limit,
                name,
                DROPPED_RECORDS,
            )
        else:
            _internal.warning(
                "pontem-async metrics: %s %r reached label_sets_limit (%d); updates with new "
                "label sets are dropped (counted in %s)",
                kind,
                name,
                limit,
                DROPPED_RECORDS,
            )

    def count(self, name: str, reason: str) -> None:
        """Count one refused update of metric ``name``."""
        with self._lock:
            self._by_reason[reason] = self._by_reason.get(reason, 0) + 1
            per = self._by_metric.get(name)
            if per is None:
                if len(self._by_metric) >= _REMEMBERED:
                    return
                per = self._by_metric[name] = {}
            per[reason] = per.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        """``dropped`` (reason -> count) and ``dropped_by_metric`` (name -> reason -> count)."""
        with self._lock:
            return {
                "dropped": dict(self._by_reason),
                "dropped_by_metric": {k: dict(v) for k, v in self._by_metric.items()},
            }

    def record(
        self, now_ns: int, resource: Resource | None, others: Iterable[DropCount] = ()
    ) -> MetricRecord | None:
        """``pontem.dropped_records`` with our counts and ``others``, or None if all are 0."""
        with self._lock:
            counts = [
                (REGISTRY_HANDLER, reason, n, self.start_ns)
                for reason, n in sorted(self._by_reason.items())
            ]
        counts.extend(sorted(c for c in others if c[2] > 0))
        if not counts:
            return None
        points = tuple(
            MetricPoint({"handler": handler, "reason": reason}, start, float(n))
            for handler, reason, n, start in counts
        )
        return MetricRecord(now_ns, DROPPED_RECORDS, "counter", "", _DESCRIPTION, points, resource)
