"""Metrics reach handlers: periodic export, the final export at shutdown, dropped-record counts,
reconfiguration, and the settings from dict_config."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from pontem_async import Telemetry, dictconfig
from pontem_async import metrics as pa_metrics
from pontem_async._config_schema import MetricsSettings, ProfilerSettings
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import Handler
from pontem_async.records import MetricPoint, MetricRecord, Record
from pontem_async.telemetry import _last_resort, get_default
from pontem_async.testing import MemoryHandler

DEADLINE = 10.0
RARELY = MetricsSettings(export_interval=3600)  # only the final export happens in a test


class Failing(Handler):
    """Takes log records and fails every emit."""

    async def open(self) -> None:
        pass

    async def emit(self, batch: Sequence[Record]) -> None:
        raise RuntimeError("disk on fire")

    async def flush(self, timeout: float | None = None) -> None:
        pass

    async def close(self, timeout: float | None = None) -> None:
        pass


def make(*handlers: Handler, metrics: MetricsSettings = RARELY) -> Telemetry:
    return Telemetry(
        "svc",
        handlers=list(handlers),
        flush_interval=0.01,
        install_signal_handlers=False,
        metrics=metrics,
    )


def metric_records(handler: MemoryHandler, name: str) -> list[MetricRecord]:
    return [r for r in handler.records if isinstance(r, MetricRecord) and r.name == name]


async def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------- periodic and final export


@pytest.mark.asyncio
async def test_snapshots_are_exported_periodically_to_metric_handlers_only() -> None:
    metric_sink = MemoryHandler(name="metrics", kinds=["metric"])
    log_sink = MemoryHandler(name="logs", kinds=["log"])
    telemetry = make(metric_sink, log_sink, metrics=MetricsSettings(export_interval=0.02))
    telemetry.start()
    try:
        requests = telemetry.metrics.counter("requests", labels=["route"])
        requests.inc(labels={"route": "/a"})

        def exported(value: float) -> bool:
            return any(r.points[0].value == value for r in metric_records(metric_sink, "requests"))

        await wait_for(lambda: exported(1.0))
        requests.inc(labels={"route": "/a"})
        await wait_for(lambda: exported(2.0))
        telemetry.logger.info("hello")
    finally:
        await telemetry.shutdown(timeout=5)
    assert {type(r) for r in metric_sink.records} == {MetricRecord}
    assert [r.body for r in log_sink.logs] == ["hello"]
    assert len(log_sink.records) == 1
    starts = {r.points[0].start_time for r in metric_records(metric_sink, "requests")}
    assert starts == {requests.labels(route="/a").start_time}


@pytest.mark.asyncio
async def test_the_final_export_at_shutdown_carries_the_latest_values() -> None:
    sink = MemoryHandler(name="metrics", kinds=["metric"])
    telemetry = make(sink)
    telemetry.start()
    depth = telemetry.metrics.gauge("depth", "Queue depth", unit="1")
    depth.set(3)
    telemetry.metrics.count("frames", 2)
    depth.set(7)
    before = time.time_ns()
    await telemetry.shutdown(timeout=5)
    assert len(sink.records) == 2
    gauge, frames = sink.records
    assert isinstance(gauge, MetricRecord)
    assert isinstance(frames, MetricRecord)
    assert gauge.timestamp >= before
    assert gauge == MetricRecord(
        gauge.timestamp,
        "depth",
        "gauge",
        "1",
        "Queue depth",
        (MetricPoint({}, depth.labels().start_time, 7.0),),
        {"service.name": "svc"},
    )
    assert [p.value for p in frames.points] == [2.0]


def test_the_final_export_of_a_synchronous_program() -> None:
    sink = MemoryHandler(name="metrics", kinds=["metric"])
    telemetry = make(sink, metrics=MetricsSettings(export_interval=0.01))
    telemetry.start()  # no running loop: the pipeline's private loop thread
    telemetry.metrics.count("frames")
    deadline = time.monotonic() + DEADLINE
    while not metric_records(sink, "frames"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    telemetry.metrics.count("frames", 4)
    telemetry.shutdown_sync(timeout=5)
    assert metric_records(sink, "frames")[-1].points[0].value == 5.0


@pytest.mark.asyncio
async def test_export_metrics_exports_now_and_nothing_is_sent_for_an_empty_registry() -> None:
    sink = MemoryHandler(name="metrics", kinds=["metric"])
    telemetry = make(sink)
    assert telemetry.export_metrics() == 0  # not started
    telemetry.start()
    assert telemetry.export_metrics() == 0  # no metric yet
    telemetry.metrics.count("x")
    assert telemetry.export_metrics() == 1
    await telemetry.flush(5)
    assert [r.name for r in metric_records(sink, "x")] == ["x"]
    await telemetry.shutdown(timeout=5)
    assert telemetry.export_metrics() == 0  # after shutdown: nothing, not even a drop


def test_metrics_are_exported_at_interpreter_exit(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    script = f"""
import pontem_async as pa
from pontem_async import metrics
from pontem_async.handlers import RotatingFileHandler
pa.init(service_name="exit", handlers=[RotatingFileHandler({str(path)!r}, compress=False)],
        install_signal_handlers=False)
metrics.count("frames", 3)
metrics.set_gauge("depth", 2, queue="a")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["kind"], x["name"], x["points"][0]["value"]) for x in lines] == [
        ("metric", "frames", 3.0),
        ("metric", "depth", 2.0),
    ]
    assert lines[1]["points"][0]["labels"] == {"queue": "a"}


# ---------------------------------------------------------------------- dropped records


@pytest.mark.asyncio
async def test_pipeline_and_registry_drops_are_exported_as_pontem_dropped_records() -> None:
    sink = MemoryHandler(name="metrics", kinds=["metric"])
    failing = Failing(name="failing", kinds=["log"])
    telemetry = make(failing, sink, metrics=MetricsSettings(3600, 1000, 1))
    telemetry.start()
    for i in range(5):
        telemetry.logger.info("lost", i=i)
    await telemetry.flush(5)
    users = telemetry.metrics.counter("logins", labels=["user"])
    users.inc(labels={"user": "a"})
    users.inc(labels={"user": "b"})  # beyond label_sets_limit=1
    await telemetry.shutdown(timeout=5)
    [dropped] = metric_records(sink, "pontem.dropped_records")
    registry_start = dropped.points[0].start_time
    pipeline_start = dropped.points[1].start_time
    assert dropped == MetricRecord(
        dropped.timestamp,
        "pontem.dropped_records",
        "counter",
        "",
        "Records and metric updates not delivered, by handler and reason",
        (
            MetricPoint({"handler": "pontem.metrics", "reason": "label_sets_limit"}, registry_start, 1.0),  # noqa: E501
            MetricPoint({"handler": "failing", "reason": "handler_error"}, pipeline_start, 5.0),
        ),
        {"service.name": "svc"},
    )  # fmt: skip
    assert telemetry.stats()["failing"]["dropped"] == {"handler_error": 5}
    text = telemetry.metrics.exposition("text")
    assert 'pontem_dropped_records_total{handler="failing",reason="handler_error"} 5.0' in text


# ---------------------------------------------------------------------- configuration


@pytest.mark.asyncio
async def test_reconfiguring_keeps_the_registry_and_the_metric_objects() -> None:
    first = MemoryHandler(name="first", kinds=["metric"])
    second = MemoryHandler(name="second", kinds=["metric"])
    telemetry = make(first)
    telemetry.start()
    registry = telemetry.metrics
    requests = registry.counter("requests", labels=["route"])
    child = requests.labels(route="/a")
    child.inc()
    telemetry.configure(
        "svc",
        handlers=[second],
        flush_interval=0.01,
        install_signal_handlers=False,
        metrics=MetricsSettings(export_interval=3600, name_limit=10, label_sets_limit=5),
    )
    await wait_for(lambda: first.closed == 1)
    assert [r.points[0].value for r in metric_records(first, "requests")] == [1.0]
    child.inc()
    requests.inc(labels={"route": "/a"})
    await telemetry.shutdown(timeout=5)
    assert telemetry.metrics is registry
    assert (registry.name_limit, registry.label_sets_limit) == (10, 5)
    assert telemetry.metrics_settings == MetricsSettings(3600, 10, 5)
    [record] = metric_records(second, "requests")
    assert record.points == (MetricPoint({"route": "/a"}, child.start_time, 3.0),)


def test_settings_default_and_are_checked() -> None:
    telemetry = Telemetry(handlers=[], install_signal_handlers=False)
    assert telemetry.metrics_settings == MetricsSettings()
    assert telemetry.profiler_settings == ProfilerSettings()
    with pytest.raises(TypeError, match=r"^metrics: expected a MetricsSettings, got dict$"):
        Telemetry(handlers=[], metrics={"export_interval": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^profiler: expected a ProfilerSettings, got bool$"):
        Telemetry(handlers=[], profiler=True)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError,
        match=r"^metrics\.export_interval: expected a positive, finite number of seconds",
    ):
        Telemetry(handlers=[], metrics=MetricsSettings(export_interval=0))
    with pytest.raises(ConfigError, match=r"^metrics\.label_sets_limit: expected a positive"):
        Telemetry(handlers=[], metrics=MetricsSettings(label_sets_limit=0))
    assert telemetry.metrics.label_sets_limit == 2000  # a failed configuration changed nothing


@pytest_asyncio.fixture
async def default_restored() -> AsyncIterator[Telemetry]:
    telemetry = get_default()
    pa_metrics.registry().clear()
    yield telemetry
    if telemetry.running:
        await telemetry.shutdown(timeout=5)
    telemetry.configure(handlers=_last_resort(), install_signal_handlers=False, start=False)
    pa_metrics.registry().clear()
    dictconfig._applied = None


@pytest.mark.asyncio
async def test_dict_config_applies_the_metrics_and_profiler_sections(
    default_restored: Telemetry,
) -> None:
    held = pa_metrics.counter("held_before_configuration")
    telemetry = dictconfig.dict_config(
        {
            "version": 1,
            "service": {"name": "svc"},
            "install_signal_handlers": False,
            "metrics": {"export_interval": 0.02, "name_limit": 3, "label_sets_limit": 4},
            "profiler": {"response_size_profile": True},
            "handlers": {
                "sink": {"class": "pontem_async.testing.MemoryHandler", "kinds": ["metric"]}
            },
        }
    )
    assert telemetry is default_restored
    assert telemetry.metrics_settings == MetricsSettings(0.02, 3, 4)
    assert telemetry.profiler_settings == ProfilerSettings(True, True, True)
    assert (pa_metrics.registry().name_limit, pa_metrics.registry().label_sets_limit) == (3, 4)
    held.inc()
    pa_metrics.count("frames")
    [sink] = telemetry.handlers
    assert isinstance(sink, MemoryHandler)

    def exported() -> set[str]:
        return {r.name for r in sink.records if isinstance(r, MetricRecord)}

    await wait_for(lambda: {"held_before_configuration", "frames"} <= exported())
