"""The consumer side against the real broker: ``pa.consume`` (fan-out to several consumers,
de-duplication by message id, gzip, topic bindings, a durable named queue) and the
``pontem-async consume`` command (JSONL out, console lines, errors)."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
from amqp_helpers import delete_exchange, unique
from hypothesis import given
from hypothesis import strategies as st

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async._consume import Consumer
from pontem_async.encoding.console import render_line
from pontem_async.handlers import RabbitMQHandler


@asynccontextmanager
async def publishing(url: str, exchange: str, **options: Any) -> AsyncIterator[Telemetry]:
    handler = RabbitMQHandler(url, exchange, kinds=["log"], name="fanout", **options)
    telemetry = Telemetry(
        "billing", handlers=[handler], install_signal_handlers=False, flush_interval=0.01
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=10)


async def take(consumer: Consumer, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        out = []
        async for record in consumer:
            out.append(record)
            if len(out) == n:
                break
        return out

    return await asyncio.wait_for(read(), timeout)


@pytest.mark.broker
@pytest.mark.asyncio
async def test_several_consumers_each_receive_every_record(amqp_url: str) -> None:
    exchange = unique("consumers")
    try:
        consumers = [pa.consume(amqp_url, exchange) for _ in range(3)]
        for consumer in consumers:
            await consumer.start()  # bound before anything is published
        async with publishing(amqp_url, exchange, compression="gzip") as telemetry:
            for i in range(2000):
                telemetry.logger.info("invoice sent", i=i)
            assert await telemetry.flush(10)
        results = await asyncio.gather(*(take(c, 2000) for c in consumers))
        for consumer in consumers:
            await consumer.close()
    finally:
        await delete_exchange(amqp_url, exchange)
    for records in results:
        assert [r["attributes"]["i"] for r in records] == list(range(2000))
        assert records[0]["body"] == "invoice sent"
        assert records[0]["resource"]["service.name"] == "billing"
    assert [c.duplicates for c in consumers] == [0, 0, 0]
    assert [c.records for c in consumers] == [2000, 2000, 2000]


@pytest.mark.broker
@pytest.mark.asyncio
async def test_a_re_published_message_id_is_delivered_once(amqp_url: str) -> None:
    exchange = unique("dedupe")
    lines = [orjson.dumps({"kind": "log", "body": f"b{i}"}) + b"\n" for i in range(4)]
    try:
        async with pa.consume(amqp_url, exchange) as consumer:
            connection = await aio_pika.connect(amqp_url)
            channel = await connection.channel()
            ex = await channel.get_exchange(exchange)
            sends = [("m-1", lines[0] + lines[1]), ("m-2", lines[2]), ("m-1", lines[0] + lines[1])]
            sends.append(("m-3", lines[3]))
            for message_id, body in sends:
                await ex.publish(
                    aio_pika.Message(
                        gzip.compress(body), message_id=message_id, content_encoding="gzip"
                    ),
                    "",
                )
            await connection.close()
            records = await take(consumer, 4)
            assert [r["body"] for r in records] == ["b0", "b1", "b2", "b3"]
            assert consumer.duplicates == 1
            assert consumer.messages == 4
    finally:
        await delete_exchange(amqp_url, exchange)


@given(ids=st.lists(st.sampled_from("abcdefgh"), max_size=40), window=st.integers(0, 5))
def test_dedupe_window_skips_exactly_the_ids_seen_within_the_window(
    ids: list[str], window: int
) -> None:
    consumer = Consumer("amqp://guest:guest@127.0.0.1/", "x", dedupe_window=window)
    recent: list[str] = []  # the reference: the last `window` distinct ids, most recent last
    for message_id in ids:
        expected = message_id in recent
        assert consumer._is_duplicate(message_id) is expected
        if expected:
            recent.remove(message_id)
        recent.append(message_id)
        del recent[: max(0, len(recent) - window)]


@pytest.mark.broker
@pytest.mark.asyncio
async def test_topic_binding_and_a_durable_queue_that_collects_while_away(amqp_url: str) -> None:
    exchange, queue = unique("topic"), unique("archive")
    try:
        archive = pa.consume(
            amqp_url, exchange, queue, exchange_type="topic", bindings=["log.*.error"]
        )
        await archive.start()
        await archive.close()  # away: the durable queue keeps collecting
        async with publishing(amqp_url, exchange, exchange_type="topic") as telemetry:
            telemetry.logger.info("fine", i=0)
            telemetry.logger.error("broken", i=1)
            telemetry.logger.warn("hm", i=2)
            telemetry.logger.error("broken again", i=3)
            assert await telemetry.flush(10)
        async with pa.consume(
            amqp_url, exchange, queue, exchange_type="topic", bindings=["log.*.error"]
        ) as archive:
            records = await take(archive, 2)
        assert [r["body"] for r in records] == ["broken", "broken again"]
    finally:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await connection.close()


def test_consume_rejects_bad_arguments_naming_them() -> None:
    with pytest.raises(ValueError, match="url: expected an amqp:// URL"):
        pa.consume("http://u:pw@host/", "x")
    with pytest.raises(ValueError, match="exchange_type: expected one of"):
        pa.consume("amqp://host/", "x", exchange_type="headers")
    with pytest.raises(ValueError, match="bindings: a direct exchange needs"):
        pa.consume("amqp://host/", "x", exchange_type="direct")


# ---------------------------------------------------------------------------- the command


def start_cli(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pontem_async", "consume", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # "bound queue ... Ctrl-C to stop": safe to publish now
    assert "bound queue" in line, line + process.stderr.read()
    return process


@pytest.mark.broker
@pytest.mark.asyncio
@pytest.mark.parametrize("output", ["jsonl", "console"])
async def test_consume_command_writes_jsonl_or_prints_console_lines(
    amqp_url: str, tmp_path: Path, output: str
) -> None:
    exchange, out = unique("cli"), tmp_path / "archive.jsonl"
    args = [amqp_url, "--exchange", exchange, "--count", "50"]
    process = start_cli(*args, *(["--out", str(out)] if output == "jsonl" else []))
    try:
        async with pa.consume(amqp_url, exchange) as witness:  # what was sent, via fan-out
            async with publishing(amqp_url, exchange) as telemetry:
                for i in range(50):
                    telemetry.logger.warn("low stock", i=i, sku=f"s{i}")
                assert await telemetry.flush(10)
            sent = await take(witness, 50)
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        await delete_exchange(amqp_url, exchange)
    assert process.returncode == 0, stderr
    assert [r["attributes"]["i"] for r in sent] == list(range(50))
    if output == "jsonl":
        assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == sent
        assert stdout == ""
    else:
        assert stdout.splitlines() == [render_line(record) for record in sent]
        assert stdout.splitlines()[0].split()[1:] == ["WARN", "low", "stock", "i=0", "sku=s0"]


def test_consume_command_reports_an_unreachable_broker_without_the_password() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    done = subprocess.run(
        [sys.executable, "-m", "pontem_async", "consume", "amqp://u:hunter2-pw@127.0.0.1:1/"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "error: cannot connect to amqp://u:***@127.0.0.1:1/" in done.stderr
    assert "hunter2-pw" not in done.stderr + done.stdout
