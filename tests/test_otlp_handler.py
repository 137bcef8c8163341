"""OTLPHandler over real HTTP: a scripted aiohttp collector on 127.0.0.1 (``otlp_receiver``)
answers 200, partial success, 429 with Retry-After, 503, 400, hangs, or is down. Every body
the handler sends is validated strictly by the collector; a test fails if one was not valid."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from otlp_receiver import Answer, Collector

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async.errors import ConfigError
from pontem_async.handlers import OTLPHandler
from pontem_async.profiler import Profiler

TOKEN = "Bearer s3cr3t-t0ken-value"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running_collector:
        yield running_collector
        assert running_collector.invalid == []  # every body sent was strictly valid OTLP


def otlp(url: str, **options: Any) -> OTLPHandler:
    settings: dict[str, Any] = {
        "name": "otlp", "timeout": 2.0, "retry_initial": 0.05, "retry_max": 0.2, **options
    }  # fmt: skip
    return OTLPHandler(url, **settings)


@asynccontextmanager
async def running(handler: OTLPHandler, **options: Any) -> AsyncIterator[Telemetry]:
    telemetry = Telemetry(
        "checkout",
        service_version="1.2.0",
        handlers=[handler],
        install_signal_handlers=False,
        **{"flush_interval": 0.02, **options},
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=10)


def names(n: int, start: int = 0) -> list[str]:
    return [f"msg-{i:05d}" for i in range(start, start + n)]


def log_all(telemetry: Telemetry, bodies: list[str]) -> None:
    for body in bodies:
        telemetry.logger.info(body)


async def delivered(telemetry: Telemetry, seconds: float = 10.0) -> bool:
    """Flush until a flush succeeds: one meeting a scheduled retry reports False at once."""
    for _ in range(int(seconds / 0.05)):
        if await telemetry.flush(5):
            return True
        await asyncio.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------- signals


@pytest.mark.asyncio
async def test_logs_metrics_traces_and_events_reach_their_paths(collector: Collector) -> None:
    handler = otlp(collector.url, headers={"Authorization": TOKEN})
    async with running(handler) as telemetry:
        telemetry.logger.info("hello", user="ada")
        telemetry.metrics.count("orders", 3)
        telemetry.events.event("exposure", {"seq": 1})
        assert telemetry.export_metrics() > 0
        assert await telemetry.flush(5)
    paths = {r.path for r in collector.accepted()}
    assert {"/v1/logs", "/v1/metrics"} <= paths
    assert collector.log_bodies()[0] == "hello"
    event = [r for r in collector.accepted() if r.path == "/v1/logs"][-1].document
    event_log = event["resourceLogs"][0]["scopeLogs"][-1]["logRecords"][-1]
    assert {"key": "event.name", "value": {"stringValue": "exposure"}} in event_log["attributes"]
    assert "orders" in collector.metric_names()
    request = collector.accepted()[0]
    assert request.headers["Authorization"] == TOKEN
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"
    resource = request.document["resourceLogs"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "checkout"}} in resource
    assert {"key": "service.version", "value": {"stringValue": "1.2.0"}} in resource


@pytest.mark.asyncio
async def test_profiled_call_trees_become_spans_with_an_error_status(collector: Collector) -> None:
    async with running(otlp(collector.url)) as telemetry:
        prof = Profiler(telemetry)

        @prof.profile
        async def child(fail: bool) -> None:
            if fail:
                raise ValueError("boom")

        @prof.profile
        async def root() -> None:
            await child(False)
            with contextlib.suppress(ValueError):
                await child(True)

        await root()
        assert await telemetry.flush(5)
    spans = collector.spans()
    assert len(spans) == 3
    (top,) = [s for s in spans if "parentSpanId" not in s]
    children = [s for s in spans if s.get("parentSpanId") == top["spanId"]]
    assert len(children) == 2
    assert {s["traceId"] for s in spans} == {top["traceId"]}
    ok, failed = children
    assert "status" not in ok
    assert failed["status"] == {"code": 2, "message": "ValueError: boom"}
    assert failed["events"][0]["name"] == "exception"


@pytest.mark.asyncio
async def test_per_signal_urls_are_used_as_given(collector: Collector) -> None:
    handler = otlp(
        "http://127.0.0.1:9",  # nothing listens there: only the overrides may be used
        logs_endpoint=f"{collector.url}/custom/logs",
        metrics_endpoint=f"{collector.url}/other/metrics",
        traces_endpoint=f"{collector.url}/x/traces",
    )
    async with running(handler) as telemetry:
        telemetry.logger.info("routed")
        telemetry.metrics.count("c")
        telemetry.export_metrics()
        assert await telemetry.flush(5)
    assert {r.path for r in collector.accepted()} == {"/custom/logs", "/other/metrics"}
    assert collector.log_bodies("/custom") == ["routed"]


def test_endpoint_precedence_argument_environment_file_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PONTEM_OTLP_ENDPOINT", raising=False)
    assert OTLPHandler().urls["logs"] == "http://127.0.0.1:4318/v1/logs"
    monkeypatch.setenv("PONTEM_OTLP_ENDPOINT", "http://env-host:4318/")
    assert OTLPHandler().endpoint == "http://env-host:4318"
    assert OTLPHandler("http://arg-host:1").endpoint == "http://arg-host:1"
    config = {
        "version": 1,
        "service": {"name": "svc"},
        "handlers": {"otlp": {"class": "pontem_async.handlers.OTLPHandler",
                              "endpoint": "http://file-host:4318"}},
    }  # fmt: skip
    telemetry = pa.dict_config(config, start=False)
    (handler,) = telemetry.handlers
    assert isinstance(handler, OTLPHandler)
    assert handler.endpoint == "http://env-host:4318"  # the environment beats the file
    telemetry = pa.dict_config(config, start=False, otlp_endpoint="http://kw-host:1")
    assert telemetry.handlers[0].endpoint == "http://kw-host:1"  # type: ignore[attr-defined]
    monkeypatch.delenv("PONTEM_OTLP_ENDPOINT")
    telemetry = pa.dict_config(config, start=False)
    assert telemetry.handlers[0].endpoint == "http://file-host:4318"  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_compression_none_sends_plain_json(collector: Collector) -> None:
    async with running(otlp(collector.url, compression=None)) as telemetry:
        telemetry.logger.info("plain")
        assert await telemetry.flush(5)
    (request,) = [r for r in collector.accepted() if r.path == "/v1/logs"]
    assert "Content-Encoding" not in request.headers


# ---------------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "answer",
    [b"", b"{}", b'{"partialSuccess": null}', b'{"partialSuccess": {}}', b"not json"],
    ids=["no-body", "empty-object", "null", "empty", "not-json"],
)
@pytest.mark.asyncio
async def test_a_200_without_rejections_counts_nothing(collector: Collector, answer: bytes) -> None:
    collector.default = Answer(200, answer)
    async with running(otlp(collector.url)) as telemetry:
        log_all(telemetry, names(5))
        assert await telemetry.flush(5)
        stats = telemetry.stats()["otlp"]
    assert stats["dropped"] == {}
    assert stats["handler"]["sent_records"] == 5
    assert collector.log_bodies() == names(5)


@pytest.mark.asyncio
async def test_a_partial_success_is_recorded_and_not_retried(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    partial = {"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "too old"}}
    collector.answers.append(Answer(200, json.dumps(partial).encode()))
    async with running(otlp(collector.url)) as telemetry:
        log_all(telemetry, names(5))
        assert not await telemetry.flush(5)  # flush reports the loss...
        log_all(telemetry, names(3, 5))
        assert await telemetry.flush(5)  # ...once
        stats = telemetry.stats()["otlp"]
    assert len([r for r in collector.received if r.path == "/v1/logs"]) == 2  # no retry
    assert stats["dropped"] == {"partial_success": 2}
    assert stats["handler"]["partially_rejected"] == 2
    assert "too old" in caplog.text


@pytest.mark.asyncio
async def test_429_waits_for_retry_after_then_delivers_once(collector: Collector) -> None:
    collector.answers.append(Answer(429, b"{}", {"Retry-After": "1"}))
    async with running(otlp(collector.url)) as telemetry:
        log_all(telemetry, names(4))
        assert not await telemetry.flush(5)  # told to come back later: not delivered yet
        assert await delivered(telemetry)
        stats = telemetry.stats()["otlp"]
    first, second = [r for r in collector.received if r.path == "/v1/logs"][:2]
    assert first.status == 429
    assert second.at - first.at >= 0.9  # the retry waited as told, not the 0.05 s backoff
    assert collector.log_bodies() == names(4)
    assert stats["handler"]["failed_attempts"] == 1
    assert stats["dropped"] == {}


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.asyncio
async def test_retryable_statuses_are_retried_with_backoff(
    collector: Collector, status: int
) -> None:
    collector.answers.extend([Answer(status), Answer(status)])
    async with running(otlp(collector.url)) as telemetry:
        log_all(telemetry, names(6))
        assert await delivered(telemetry)
        stats = telemetry.stats()["otlp"]
    statuses = [r.status for r in collector.received if r.path == "/v1/logs"]
    assert statuses[:3] == [status, status, 200]
    assert collector.log_bodies() == names(6)
    assert stats["dropped"] == {}


@pytest.mark.parametrize("status", [400, 401, 413, 500])
@pytest.mark.asyncio
async def test_other_statuses_are_rejected_not_retried(
    collector: Collector, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    message = f"refused because {TOKEN} is not welcome"  # a collector echoing the token
    collector.answers.append(Answer(status, json.dumps({"code": 3, "message": message}).encode()))
    async with running(otlp(collector.url, headers={"Authorization": TOKEN})) as telemetry:
        log_all(telemetry, names(3))
        assert not await telemetry.flush(5)
        log_all(telemetry, names(2, 3))
        assert await telemetry.flush(5)
        stats = telemetry.stats()["otlp"]
    log_requests = [r for r in collector.received if r.path == "/v1/logs"]
    assert [r.status for r in log_requests] == [status, 200]
    assert collector.log_bodies() == names(2, 3)
    assert stats["dropped"] == {"rejected": 3}
    assert stats["handler"]["last_error"] == f"HTTP {status}: refused because *** is not welcome"
    assert "refused because *** is not welcome" in caplog.text
    assert "s3cr3t" not in caplog.text


@pytest.mark.asyncio
async def test_a_hanging_collector_times_out_and_the_body_is_sent_again(
    collector: Collector,
) -> None:
    collector.answers.append(Answer(200, hang=5.0))
    async with running(otlp(collector.url, timeout=0.3)) as telemetry:
        log_all(telemetry, names(3))
        assert await delivered(telemetry)
        stats = telemetry.stats()["otlp"]
    assert collector.arrivals.count("/v1/logs") == 2  # the hung request, then the retry
    assert collector.log_bodies() == names(3)  # accepted once: the hung answer never came
    assert stats["handler"]["last_error"] == "no answer within 0.3s"


# ---------------------------------------------------------------------------------- outages


@pytest.mark.slow
@pytest.mark.asyncio
async def test_all_records_arrive_exactly_once_after_an_outage(collector: Collector) -> None:
    handler = otlp(collector.url, retry_max=0.5)
    async with running(handler, batch_size=50) as telemetry:
        log_all(telemetry, names(100))
        assert await telemetry.flush(5)
        collector.down()
        for round_ in range(6):  # several seconds of records while nobody listens
            log_all(telemetry, names(100, 100 + round_ * 100))
            assert not await telemetry.flush(5)
            await asyncio.sleep(0.5)
        waiting = telemetry.stats()["otlp"]["handler"]
        assert waiting["retry_buffer_bodies"] > 1  # it grows with the outage
        assert waiting["retry_buffer_records"] == 600
        collector.up()
        assert await delivered(telemetry)
        log_all(telemetry, names(50, 700))
        assert await telemetry.flush(5)
        stats = telemetry.stats()["otlp"]
    assert collector.log_bodies() == names(750)
    assert stats["dropped"] == {}
    assert stats["handler"]["retry_buffer_bodies"] == 0


@pytest.mark.slow
@pytest.mark.asyncio
async def test_memory_stays_bounded_with_the_collector_down_for_100k_records(
    collector: Collector,
) -> None:
    collector.down()
    bound = 256 * 1024
    handler = otlp(
        collector.url, retry_buffer_bodies=1000, retry_buffer_bytes=bound, max_body_bytes=bound
    )
    highest = 0
    async with running(handler, batch_size=1000, queue_size=200_000) as telemetry:
        for chunk in range(100):
            log_all(telemetry, names(1000, chunk * 1000))
            await asyncio.sleep(0)
            highest = max(highest, telemetry.stats()["otlp"]["handler"]["retry_buffer_bytes"])
        await telemetry.flush(10)
        stats = telemetry.stats()["otlp"]
        own = stats["handler"]
        assert own["retry_buffer_bytes"] <= bound
        assert highest <= bound
        assert own["evicted_records"] > 0
        # nothing vanished: every record is delivered-to-handler = waiting + evicted
        assert stats["delivered"] == 100_000
        assert own["retry_buffer_records"] + stats["dropped"]["retry_buffer_full"] == 100_000
        collector.up()
        assert await delivered(telemetry)
    received = collector.log_bodies()
    assert received == names(len(received), 100_000 - len(received))  # the newest, in order
    assert len(received) == own["retry_buffer_records"]


@pytest.mark.asyncio
async def test_shutdown_tries_once_more_and_reports_what_it_could_not_deliver(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    handler = otlp(collector.url, retry_initial=30, retry_max=30)  # no retry before shutdown
    async with running(handler) as telemetry:
        collector.down()
        log_all(telemetry, names(10))
        assert not await telemetry.flush(5)
        collector.up()  # back, but the next retry is 15-30 s away: only shutdown's try remains
    assert collector.log_bodies() == names(10)
    collector.down()
    handler = otlp(collector.url)
    async with running(handler) as telemetry:
        log_all(telemetry, names(7))
        assert not await telemetry.flush(5)
    stats = telemetry.stats()["otlp"]
    assert stats["dropped"]["undelivered_at_close"] == 7
    assert stats["handler"]["undelivered_at_close"] == 7
    assert "7 records in 1 bodies could not be delivered before close" in caplog.text


# ---------------------------------------------------------------------------------- sizes


@pytest.mark.asyncio
async def test_large_batches_are_split_and_oversized_records_dropped(collector: Collector) -> None:
    handler = otlp(collector.url, max_body_bytes=4096, retry_buffer_bytes=1 << 20)
    async with running(handler, batch_size=500) as telemetry:
        log_all(telemetry, names(200))
        telemetry.logger.info("x" * 5000)
        log_all(telemetry, names(10, 200))
        assert not await telemetry.flush(5)  # the oversized one is reported
        stats = telemetry.stats()["otlp"]
    assert collector.log_bodies() == names(210)
    assert len([r for r in collector.accepted() if r.path == "/v1/logs"]) > 2
    assert stats["dropped"] == {"too_large": 1}


# ---------------------------------------------------------------------------------- settings


def test_header_values_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = OTLPHandler("http://user:pw@127.0.0.1:4318", headers={"Authorization": TOKEN})
    shown = f"{handler!r} {handler.describe()} {handler.stats()}"
    assert "s3cr3t" not in shown
    assert ":pw@" not in shown
    assert handler.describe()["headers"] == {"Authorization": "***"}


def test_check_config_redacts_headers(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from pontem_async.cli import main

    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "version": 1, "service": {"name": "svc"},
        "handlers": {"otlp": {"class": "pontem_async.handlers.OTLPHandler",
                              "headers": {"Authorization": TOKEN, "X-Api": "k3y-value"}}},
    }))  # fmt: skip
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t" not in out
    assert "k3y-value" not in out
    assert "headers: '***'" in out


@pytest.mark.parametrize(
    ("options", "key", "needle"),
    [
        ({"endpoint": "ftp://host"}, "endpoint", "http:// or https://"),
        ({"endpoint": 5}, "endpoint", "URL string"),
        ({"compression": "zstd"}, "compression", "'gzip' or None"),
        ({"timeout": 0}, "timeout", "positive number"),
        ({"headers": ["a"]}, "headers", "mapping"),
        ({"headers": {"A": 1}}, "headers", "must be a string"),
        ({"max_body_bytes": 0}, "max_body_bytes", "positive integer"),
        ({"retry_buffer_bytes": 10, "max_body_bytes": 100}, "retry_buffer_bytes", "at least"),
        ({"retry_initial": 5.0, "retry_max": 1.0}, "retry_max", "at least retry_initial"),
        ({"logs_endpoint": "nope"}, "logs_endpoint", "http:// or https://"),
    ],
)
def test_bad_settings_name_their_key_path(options: dict[str, Any], key: str, needle: str) -> None:
    config = {
        "version": 1,
        "service": {"name": "svc"},
        "handlers": {"otlp": {"class": "pontem_async.handlers.OTLPHandler", **options}},
    }
    with pytest.raises(ConfigError, match=needle) as caught:
        pa.dict_config(config, start=False)
    assert str(caught.value).startswith(f"handlers.otlp.{key}: ")


def test_a_bad_header_value_is_not_echoed() -> None:
    with pytest.raises(ValueError, match="line break") as caught:
        OTLPHandler(headers={"Authorization": "Bearer abc\r\nX: y"})
    assert "abc" not in str(caught.value)


@pytest.mark.asyncio
async def test_drops_reach_the_pontem_dropped_records_metric(collector: Collector) -> None:
    collector.answers.append(Answer(400, b'{"message": "no"}'))
    async with running(otlp(collector.url)) as telemetry:
        telemetry.logger.info("refused")
        await telemetry.flush(5)
        telemetry.export_metrics()
        assert await telemetry.flush(5)
    metrics = [
        m
        for r in collector.accepted()
        if r.path == "/v1/metrics"
        for rm in r.document["resourceMetrics"]
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
        if m["name"] == "pontem.dropped_records"
    ]
    points = metrics[0]["sum"]["dataPoints"]
    labels = [{a["key"]: a["value"]["stringValue"] for a in p["attributes"]} for p in points]
    assert {"handler": "otlp", "reason": "rejected"} in labels
