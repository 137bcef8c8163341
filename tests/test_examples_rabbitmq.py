"""The fan-out examples run as written against the real broker: one producer, three consumers
(an archiver, a live console, an alerting worker), and the file + console + RabbitMQ configs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aio_pika
import orjson
import pytest
from amqp_helpers import delete_exchange, unique

import pontem_async as pa

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = [pytest.mark.broker, pytest.mark.asyncio]


def _env(amqp_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    env["PONTEM_AMQP_URL"] = amqp_url
    return env


def _consumer(cwd: Path, amqp_url: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fanout_consumer.py"), *args],
        cwd=cwd,
        env=_env(amqp_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    ready = process.stderr.readline()
    if "ready on queue" not in ready:
        process.kill()
        _, rest = process.communicate()
        raise AssertionError(f"the consumer did not start: {ready}{rest}")
    return process


async def test_one_producer_and_three_consumers_each_get_every_record(
    amqp_url: str, tmp_path: Path
) -> None:
    exchange, archive_queue = unique("example"), unique("archive")
    common = ["--exchange", exchange, "--count", "100"]  # 50 logs + 50 call trees
    consumers: dict[str, subprocess.Popen[str]] = {}
    try:
        consumers["archive"] = _consumer(
            tmp_path, amqp_url, "archive", "archive.jsonl", "--queue", archive_queue, *common
        )
        consumers["console"] = _consumer(tmp_path, amqp_url, "console", *common)
        consumers["alert"] = _consumer(tmp_path, amqp_url, "alert", *common)
        producer = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(EXAMPLES / "fanout_producer.py"), "--exchange", exchange,
             "--orders", "50"],
            cwd=tmp_path, env=_env(amqp_url), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        outputs = {
            role: await asyncio.to_thread(process.communicate, timeout=60)
            for role, process in consumers.items()
        }
    finally:
        for process in consumers.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        await channel.queue_delete(archive_queue)
        await connection.close()
        await delete_exchange(amqp_url, exchange)
    assert producer.returncode == 0, producer.stderr
    assert "confirmed: True" in producer.stdout
    assert "payment declined" in producer.stderr  # the producer's own console: errors only
    for role, process in consumers.items():
        assert process.returncode == 0, (role, outputs[role][1])
        assert f"{role}: 100 records, 0 duplicates skipped" in outputs[role][1]
    archived = [
        orjson.loads(line) for line in (tmp_path / "archive.jsonl").read_bytes().splitlines()
    ]
    logs = [r for r in archived if r["kind"] == "log"]
    assert [r["attributes"]["order_id"] for r in logs] == list(range(50))
    assert sum(r["kind"] == "profile" for r in archived) == 50
    console_lines = outputs["console"][0].splitlines()
    assert len(console_lines) == 100
    assert sum(" order placed " in line for line in console_lines) == 45
    alerts = outputs["alert"][0].splitlines()
    assert alerts == [f"ALERT payment declined (order {n})" for n in range(9, 50, 10)]


@pytest.mark.parametrize("config", ["config_rabbitmq.json", "config_rabbitmq.yaml"])
async def test_file_console_and_rabbitmq_config(amqp_url: str, tmp_path: Path, config: str) -> None:
    exchange = unique("config")
    text = (EXAMPLES / config).read_text()
    if config.endswith(".json"):
        data = json.loads(text)
        data["handlers"]["fanout"]["exchange"] = exchange
        text = json.dumps(data)
    else:
        text = text.replace("exchange: telemetry", f"exchange: {exchange}")
    path = tmp_path / config
    path.write_text(text)
    try:
        async with pa.consume(amqp_url, exchange) as records:
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, str(EXAMPLES / "from_config.py"), str(path)],
                cwd=tmp_path, env=_env(amqp_url), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            received = []
            async for record in records:
                received.append(record)
                if len(received) == 2:
                    break
    finally:
        await delete_exchange(amqp_url, exchange)
    assert [r["body"] for r in received] == ["cart priced", "payment slow"]
    assert received[0]["resource"]["service.name"] == "checkout"
    on_disk = (tmp_path / "telemetry" / "records.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["body"] for line in on_disk] == ["cart priced", "payment slow"]
    assert "payment slow" in done.stderr
