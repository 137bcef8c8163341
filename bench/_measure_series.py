"""One measurement of one way to log numeric series, in this fresh process; ``bench_series.py``
spawns it.

    python bench/_measure_series.py SCENARIO MEASUREMENT WORKDIR RESULT_JSON PARAMS_JSON

The workload is a training loop's: ``SERIES`` (1,024) series of one metric, told apart by a
``series`` label, each getting ``POINTS`` (100) new float64 points per round. A scenario logs
one round with :meth:`Scenario.round`; how it does that is the thing compared (one
``pa.metrics.series`` call per series from a NumPy row or a list, or one call per point).

Measurements:

- ``latency``: caller-side cost. One warm-up round, then ``blocks`` blocks of ``CALLS`` (1,000)
  calls, each timed with ``perf_counter_ns``; after each block the scenario flushes (untimed),
  so every block starts with an idle consumer and never fills the queue (a full queue would
  make the caller wait for the consumer: that is throughput, measured below). Reports the
  median block ÷ the points it logged (100,000 for a series call per series, 1,000 for a call
  per point).
- ``throughput``: ``rounds`` rounds as fast as possible, then the scenario's flush (everything
  written to the file), then ``os.fsync``. points/s = points ÷ (first call → flushed); the
  durable rate (→ fsynced) is in the details. Then the file is parsed and the points actually
  on disk are counted.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from typing import IO, Any

import numpy as np
import orjson

SERIES = 1024
POINTS = 100
PER_ROUND = SERIES * POINTS
CALLS = 1000


class Scenario:
    """Logs rounds of the workload; subclasses say how."""

    label = ""
    call = ""
    config = ""
    keeps_every_point = True
    points_per_call = POINTS

    def setup(self, workdir: str) -> None:
        rng = np.random.default_rng(0)
        self.values = rng.random((SERIES, POINTS))
        self.rows: list[list[float]] = self.values.tolist()
        self.keys = [str(i) for i in range(SERIES)]
        self.labels = [{"series": key} for key in self.keys]
        self.path = os.path.join(workdir, "records.jsonl")
        self.rounds_done = 0

    def round(self) -> None:
        self.log(0, SERIES)

    def log(self, first: int, count: int) -> None:
        """Log one round's points of series ``first`` .. ``first + count - 1``."""
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def points_on_disk(self) -> int:
        """Points of the metric ``loss`` found in the file."""
        total = 0
        with open(self.path, "rb") as f:
            for raw in f:
                total += self.points_in(orjson.loads(raw))
        return total

    def points_in(self, line: Any) -> int:
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        return {}


class PontemAsync(Scenario):
    config = (
        "pa.init(handlers=[RotatingFileHandler(path, max_bytes=1<<40, compress=False)], "
        "queue_size=10_000, overflow='block'); plain sync program (pipeline on its private "
        "loop thread)"
    )

    def setup(self, workdir: str) -> None:
        super().setup(workdir)
        import pontem_async as pa
        from pontem_async.handlers import RotatingFileHandler

        handler = RotatingFileHandler(self.path, max_bytes=1 << 40, compress=False)
        self.telemetry = pa.init(
            service_name="bench",
            handlers=[handler],
            queue_size=10_000,
            overflow="block",
            install_signal_handlers=False,
        )
        self.pa = pa

    def flush(self) -> None:
        assert self.telemetry.flush_sync(timeout=600)

    def finish(self) -> None:
        self.report = str(self.telemetry.shutdown_sync(timeout=600))

    def points_in(self, line: Any) -> int:
        if line.get("kind") == "series" and line["name"] == "loss":
            return len(line["values"])
        return 0

    def details(self) -> dict[str, Any]:
        return {"stats": self.telemetry.stats(), "shutdown": getattr(self, "report", None)}


class SeriesNumpy(PontemAsync):
    label = "pontem-async series, NumPy row"
    call = 'pa.metrics.series("loss", values[i], labels={"series": i})'

    def log(self, first: int, count: int) -> None:
        series, values, labels = self.pa.metrics.series, self.values, self.labels
        for i in range(first, first + count):
            series("loss", values[i], labels=labels[i])


class SeriesList(PontemAsync):
    label = "pontem-async series, list"
    call = 'pa.metrics.series("loss", row_list, labels={"series": i})'

    def log(self, first: int, count: int) -> None:
        series, rows, labels = self.pa.metrics.series, self.rows, self.labels
        for i in range(first, first + count):
            series("loss", rows[i], labels=labels[i])


class SeriesPerPoint(PontemAsync):
    label = "pontem-async series, one point per call"
    call = 'pa.metrics.series("loss", [v], labels={"series": i})'

    points_per_call = 1

    def log(self, first: int, count: int) -> None:
        series, rows, labels = self.pa.metrics.series, self.rows, self.labels
        for i in range(first, first + count):
            label = labels[i]
            for v in rows[i]:
                series("loss", [v], labels=label)


class LogPerPoint(PontemAsync):
    label = "pontem-async log record per point"
    call = 'log.info("loss", series=i, step=s, value=v)'

    points_per_call = 1

    def log(self, first: int, count: int) -> None:
        info, rows, keys = self.pa.get_logger("bench").info, self.rows, self.keys
        base = self.rounds_done * POINTS
        for i in range(first, first + count):
            key = keys[i]
            for j, v in enumerate(rows[i]):
                info("loss", series=key, step=base + j, value=v)
        if first + count == SERIES:
            self.rounds_done += 1

    def points_in(self, line: Any) -> int:
        return 1 if line.get("kind") == "log" and line["body"] == "loss" else 0


class GaugePerPoint(PontemAsync):
    label = "pontem-async gauge set per point"
    call = 'g = pa.metrics.gauge("loss", labels=["series"]).labels(series=i); g.set(v)'
    keeps_every_point = False

    def setup(self, workdir: str) -> None:
        super().setup(workdir)
        gauge = self.pa.metrics.gauge("loss", labels=["series"])
        self.bound = [gauge.labels(series=key) for key in self.keys]

    points_per_call = 1

    def log(self, first: int, count: int) -> None:
        bound, rows = self.bound, self.rows
        for i in range(first, first + count):
            set_value = bound[i].set
            for v in rows[i]:
                set_value(v)

    def flush(self) -> None:
        self.telemetry.export_metrics()
        super().flush()

    def points_in(self, line: Any) -> int:
        if line.get("kind") == "metric" and line["name"] == "loss":
            return len(line["points"])
        return 0


class OtelGauge(Scenario):
    label = "OpenTelemetry SDK gauge set per point"
    call = 'gauge.set(v, {"series": i})'
    config = (
        "MeterProvider(PeriodicExportingMetricReader(ConsoleMetricExporter(out=file, one JSON "
        "line per export), default 60 s interval)); meter.create_gauge('loss'); "
        "force_flush() to write"
    )
    keeps_every_point = False

    def setup(self, workdir: str) -> None:
        super().setup(workdir)
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import Resource

        self.file: IO[str] = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        exporter = ConsoleMetricExporter(
            out=self.file, formatter=lambda data: data.to_json(indent=None) + "\n"
        )
        self.provider = MeterProvider(
            metric_readers=[PeriodicExportingMetricReader(exporter)],
            resource=Resource.create({"service.name": "bench"}),
        )
        self.gauge = self.provider.get_meter("bench").create_gauge("loss")

    points_per_call = 1

    def log(self, first: int, count: int) -> None:
        set_value, rows, labels = self.gauge.set, self.rows, self.labels
        for i in range(first, first + count):
            attributes = labels[i]
            for v in rows[i]:
                set_value(v, attributes)

    def flush(self) -> None:
        assert self.provider.force_flush()
        self.file.flush()

    def finish(self) -> None:
        self.provider.shutdown()
        self.file.close()

    def points_in(self, line: Any) -> int:
        total = 0
        for resource in line.get("resource_metrics", []):
            for scope in resource.get("scope_metrics", []):
                for metric in scope.get("metrics", []):
                    if metric.get("name") == "loss":
                        total += len(metric["data"]["data_points"])
        return total


SCENARIOS: dict[str, type[Scenario]] = {
    "numpy": SeriesNumpy,
    "list": SeriesList,
    "point-series": SeriesPerPoint,
    "point-log": LogPerPoint,
    "point-gauge": GaugePerPoint,
    "otel-gauge": OtelGauge,
}


def measure_latency(scenario: Scenario, p: dict[str, Any]) -> dict[str, Any]:
    scenario.round()
    scenario.flush()
    clock = time.perf_counter_ns
    count = CALLS * scenario.points_per_call // POINTS  # series per block
    points = count * POINTS
    per_point: list[float] = []
    first = 0
    for _ in range(p["blocks"]):
        if first + count > SERIES:
            first = 0
        t0 = clock()
        scenario.log(first, count)
        per_point.append((clock() - t0) / points)
        first += count
        scenario.flush()
    scenario.finish()
    per_point.sort()
    return {
        "ns_per_point": statistics.median(per_point),
        "min": per_point[0],
        "max": per_point[-1],
        "points": p["blocks"] * points,
        "details": scenario.details(),
    }


def measure_throughput(scenario: Scenario, p: dict[str, Any]) -> dict[str, Any]:
    rounds = p["rounds"]
    points = rounds * PER_ROUND
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(rounds):
        scenario.round()
    t_called = time.perf_counter()
    scenario.flush()
    t_written = time.perf_counter()
    fd = os.open(scenario.path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    t_durable = time.perf_counter()
    scenario.finish()
    on_disk = scenario.points_on_disk()
    return {
        "points": points,
        "points_per_s": points / (t_written - t0),
        "durable_points_per_s": points / (t_durable - t0),
        "call_seconds": t_called - t0,
        "flush_seconds": t_written - t_called,
        "fsync_seconds": t_durable - t_written,
        "bytes": os.path.getsize(scenario.path),
        "on_disk": on_disk,
        "keeps_every_point": scenario.keeps_every_point,
        "details": scenario.details(),
    }


def main(argv: list[str]) -> int:
    key, measurement, workdir, result_path, params_json = argv
    params: dict[str, Any] = json.loads(params_json)
    scenario = SCENARIOS[key]()
    scenario.setup(workdir)
    measure = measure_latency if measurement == "latency" else measure_throughput
    result = measure(scenario, params)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
