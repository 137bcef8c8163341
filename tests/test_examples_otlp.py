"""``examples/config_otlp.{json,yaml}`` load with ``pa.file_config`` and deliver to a collector
on 127.0.0.1 (console, file and OTLP handlers together)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_receiver import Collector

import pontem_async as pa
from pontem_async.handlers import OTLPHandler

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running
        assert running.invalid == []


@pytest.mark.parametrize("name", ["config_otlp.json", "config_otlp.yaml"])
@pytest.mark.asyncio
async def test_example_config_delivers_to_the_collector(
    name: str,
    collector: Collector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the file handler writes ./telemetry/records.jsonl
    monkeypatch.delenv("PONTEM_OTLP_ENDPOINT", raising=False)
    telemetry = pa.file_config(
        EXAMPLES / name, otlp_endpoint=collector.url, install_signal_handlers=False
    )
    try:
        assert sorted(h.name for h in telemetry.handlers) == ["console", "file", "otlp"]
        otlp = next(h for h in telemetry.handlers if isinstance(h, OTLPHandler))
        assert otlp.endpoint == collector.url  # the keyword argument beats the file
        telemetry.logger.info("order placed", order_id=7)
        telemetry.logger.error("payment failed", order_id=8)
        assert await telemetry.flush(5)
    finally:
        await telemetry.shutdown(timeout=5)
    assert collector.log_bodies() == ["order placed", "payment failed"]
    resource = collector.accepted()[0].document["resourceLogs"][0]["resource"]["attributes"]
    assert {"key": "deployment.environment", "value": {"stringValue": "dev"}} in resource
    lines = (tmp_path / "telemetry" / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["body"] for line in lines][:2] == ["order placed", "payment failed"]
    assert "payment failed" in capsys.readouterr().err
