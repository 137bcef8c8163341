"""``pontem-async receive-otlp``: a real subprocess listening on 127.0.0.1, fed by OTLPHandler
and by hand-made requests; what it writes is what was sent."""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from otlp_validate import validate

from pontem_async import Telemetry
from pontem_async.handlers import OTLPHandler
from pontem_async.profiler import Profiler


class Receiver:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pontem_async",
                "receive-otlp",
                "--port",
                "0",
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, f"unexpected first line {first!r}; stderr: {self.proc.stderr.read()}"  # type: ignore[union-attr]
        self.url = match[1]

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        return self.proc.returncode, out

    def lines(self, signal_name: str) -> list[dict[str, object]]:
        path = self.out / f"{signal_name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = Receiver(tmp_path / "received")
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.communicate(timeout=10)


@pytest.mark.asyncio
async def test_writes_what_the_handler_sends_as_jsonl(receiver: Receiver) -> None:
    handler = OTLPHandler(receiver.url, name="otlp")
    telemetry = Telemetry("svc", handlers=[handler], install_signal_handlers=False)
    telemetry.start()
    prof = Profiler(telemetry)

    @prof.profile
    async def work() -> None:
        pass

    try:
        telemetry.logger.warn("disk almost full", free_mb=12)
        telemetry.metrics.count("jobs", 2)
        await work()
        telemetry.export_metrics()
        assert await telemetry.flush(5)
    finally:
        await telemetry.shutdown(timeout=5)
    status, out = receiver.stop()
    assert status == 0
    assert "stopped; requests received" in out
    (logs,) = receiver.lines("logs")
    validate("logs", logs)
    record = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]  # type: ignore[index]
    assert record["body"] == {"stringValue": "disk almost full"}
    assert record["severityText"] == "WARN"
    for request in receiver.lines("metrics"):
        validate("metrics", request)
    (traces,) = receiver.lines("traces")
    spans = traces["resourceSpans"][0]["scopeSpans"][0]["spans"]  # type: ignore[index]
    assert [span["name"] for span in spans] == ["test_receive_otlp_cli:work"]


@pytest.mark.asyncio
async def test_answers_like_a_collector(receiver: Receiver) -> None:
    body = {"resourceLogs": []}
    async with aiohttp.ClientSession() as session:

        async def post(path: str, data: bytes, **headers: str) -> tuple[int, dict[str, object]]:
            headers.setdefault("Content-Type", "application/json")
            async with session.post(receiver.url + path, data=data, headers=headers) as resp:
                return resp.status, await resp.json()

        assert await post("/v1/logs", json.dumps(body).encode()) == (200, {"partialSuccess": {}})
        packed = gzip.compress(json.dumps({"resourceSpans": []}).encode())
        assert (await post("/v1/traces", packed, **{"Content-Encoding": "gzip"}))[0] == 200
        status, answer = await post("/v1/metrics", b"{not json")
        assert (status, answer["code"]) == (400, 3)
        status, answer = await post(
            "/v1/logs", b"\x0a\x00", **{"Content-Type": "application/x-protobuf"}
        )
        assert status == 415
        assert "application/json" in str(answer["message"])
        assert (await post("/v1/profiles", b"{}"))[0] == 404
        assert (await post("/v1/logs", b"[1, 2]"))[0] == 400
    assert receiver.stop()[0] == 0
    assert receiver.lines("logs") == [body]
    assert receiver.lines("traces") == [{"resourceSpans": []}]
    assert receiver.lines("metrics") == []


def test_an_unusable_output_directory_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pontem_async",
            "receive-otlp",
            "--port",
            "0",
            "--out",
            str(blocker / "sub"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot create" in result.stderr


def test_a_bad_port_is_refused_by_the_parser() -> None:
    from pontem_async.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["receive-otlp", "--port", "70000", "--out", "x"])
    assert caught.value.code == 2
