"""RabbitMQHandler when the broker goes away: down at start-up, a connection cut mid-stream,
a spill to disk replayed in order (also by the next process), and a real broker restart.

"Down" is made two ways, both with the real broker: a loopback proxy the test closes and opens
again (fast, disturbs nobody), and ``rabbitmqctl stop_app`` / ``start_app`` (slow, restored in a
``finally``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from amqp_helpers import (
    Proxy,
    Received,
    collect,
    exchange_with_queues,
    has_rabbitmqctl,
    rabbitmqctl,
    unique,
    wait_for_port,
)

from pontem_async import Telemetry
from pontem_async.handlers import RabbitMQHandler

pytestmark = pytest.mark.broker


@asynccontextmanager
async def telemetry_with(handler: RabbitMQHandler, **options: Any) -> AsyncIterator[Telemetry]:
    telemetry = Telemetry(
        "orders",
        handlers=[handler],
        install_signal_handlers=False,
        **{"flush_interval": 0.01, "queue_size": 100_000, **options},
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=10)


def fast(url: str, exchange: str, **options: Any) -> RabbitMQHandler:
    """A handler that notices outages and recoveries quickly (logs only: no metric records)."""
    settings = {"reconnect_interval": 0.2, "connect_timeout": 1.0, "publish_timeout": 2.0}
    return RabbitMQHandler(url, exchange, kinds=["log"], name="fanout", **{**settings, **options})


async def flush_until_confirmed(telemetry: Telemetry, within: float = 30.0) -> None:
    """Flush until it succeeds: after an outage the handler needs a moment to reconnect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await telemetry.flush(5):
        assert loop.time() < deadline, f"not confirmed within {within}s: {telemetry.stats()}"
        await asyncio.sleep(0.1)


def first_seen_ids(received: Received) -> list[int]:
    """Record ids in arrival order, each re-published message counted once (by message id),
    as a de-duplicating consumer sees them."""
    seen: set[str] = set()
    ids: list[int] = []
    for message, message_id in zip(received.messages, received.ids, strict=True):
        if message_id in seen:
            continue
        seen.add(message_id)
        ids.extend(r["attributes"]["i"] for r in _records(message))
    return ids


def _records(message: Any) -> list[dict[str, Any]]:
    from amqp_helpers import decode

    return decode(message)


# ---------------------------------------------------------------------------- with a proxy


@pytest.mark.asyncio
async def test_broker_down_at_start_up_then_up_delivers_everything_emitted_meanwhile(
    amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pontem_async")
    proxy, exchange = Proxy(), unique("startdown")
    handler = fast(proxy.url(), exchange)
    try:
        async with exchange_with_queues(amqp_url, exchange) as (queue,):
            async with telemetry_with(handler) as telemetry:  # starts although nothing answers
                for i in range(1000):
                    telemetry.logger.info("while down", i=i)
                assert not await telemetry.flush(1)
                assert telemetry.stats()["fanout"]["handler"]["buffered_records"] == 1000
                await asyncio.sleep(0.5)  # more failed attempts
                await proxy.start()
                await flush_until_confirmed(telemetry)
                stats = telemetry.stats()["fanout"]
            received = await collect(queue, lambda r: len(r.records) >= 1000)
    finally:
        await proxy.stop()
    assert first_seen_ids(received) == list(range(1000))
    assert stats["dropped"] == {}
    messages = [r.getMessage() for r in caplog.records if r.name == "pontem_async"]
    assert len([m for m in messages if "cannot connect to the broker" in m]) == 1  # said once
    assert any("connected to amqp://guest:***@127.0.0.1" in m for m in messages)


@pytest.mark.asyncio
async def test_connection_cut_mid_stream_loses_nothing_and_keeps_the_order(amqp_url: str) -> None:
    proxy, exchange, n = Proxy(), unique("cut"), 20_000
    await proxy.start()
    handler = fast(proxy.url(), exchange)
    errors: list[BaseException] = []

    async def produce(telemetry: Telemetry) -> None:
        for i in range(n):
            try:
                telemetry.logger.info("steady", i=i)
            except BaseException as exc:  # the application must never see one
                errors.append(exc)
            if i % 200 == 0:
                await asyncio.sleep(0.002)

    try:
        async with exchange_with_queues(amqp_url, exchange) as (queue,):
            async with telemetry_with(handler, batch_size=100) as telemetry:
                producer = asyncio.create_task(produce(telemetry))
                await asyncio.sleep(0.05)
                await proxy.stop()  # every connection through the proxy is cut
                await asyncio.sleep(0.5)
                await proxy.start()
                await producer
                await flush_until_confirmed(telemetry)
                stats = telemetry.stats()["fanout"]
            received = await collect(queue, lambda r: len(set(first_seen_ids(r))) >= n)
    finally:
        await proxy.stop()
    assert errors == []
    assert first_seen_ids(received) == list(range(n))
    assert stats["dropped"] == {}
    assert received.duplicates <= stats["handler"]["republished_messages"]
    assert proxy.connections >= 2  # it really reconnected


@pytest.mark.asyncio
async def test_spill_to_disk_during_an_outage_is_replayed_in_order(
    amqp_url: str, tmp_path: Path
) -> None:
    proxy, exchange, spill = Proxy(), unique("spill"), tmp_path / "spill"
    handler = fast(
        proxy.url(), exchange, spill_dir=spill, max_message_bytes=8192, buffer_bytes=8192
    )
    try:
        async with exchange_with_queues(amqp_url, exchange) as (queue,):
            async with telemetry_with(handler, batch_size=50) as telemetry:
                for i in range(3000):
                    telemetry.logger.info("kept on disk", i=i)
                assert not await telemetry.flush(1)
                during = telemetry.stats()["fanout"]["handler"]
                files = sorted(p.name for p in spill.iterdir())
                await proxy.start()
                await flush_until_confirmed(telemetry)
                after = telemetry.stats()["fanout"]
            received = await collect(queue, lambda r: len(r.records) >= 3000)
    finally:
        await proxy.stop()
    assert during["buffered_records"] == 3000
    assert during["spilled_messages"] == len(files) > 10
    assert files[0].endswith(".msg")
    assert first_seen_ids(received) == list(range(3000))
    assert after["dropped"] == {}
    assert after["handler"]["spilled_messages"] == 0
    assert list(spill.iterdir()) == []


@pytest.mark.asyncio
async def test_spill_left_at_exit_is_published_first_by_the_next_process(
    amqp_url: str, tmp_path: Path
) -> None:
    proxy, exchange, spill = Proxy(), unique("respawn"), tmp_path / "spill"
    async with exchange_with_queues(amqp_url, exchange) as (queue,):
        # the first "process": the broker never answers, it exits with 500 records unsent
        first = fast(proxy.url(), exchange, spill_dir=spill, connect_timeout=0.3)
        async with telemetry_with(first, batch_size=100) as telemetry:
            for i in range(500):
                telemetry.logger.info("before restart", i=i)
        assert telemetry.stats()["fanout"]["dropped"] == {}
        assert len(list(spill.iterdir())) == 5
        # the next one, with the broker up: old records first, then its own
        second = fast(amqp_url, exchange, spill_dir=spill)
        async with telemetry_with(second, batch_size=100) as telemetry:
            for i in range(500, 600):
                telemetry.logger.info("after restart", i=i)
            await flush_until_confirmed(telemetry)
        received = await collect(queue, lambda r: len(r.records) >= 600)
    assert first_seen_ids(received) == list(range(600))
    assert list(spill.iterdir()) == []


# ---------------------------------------------------------------------------- a real restart


@pytest.mark.slow
@pytest.mark.asyncio
async def test_broker_restart_during_a_steady_stream_delivers_every_record_at_least_once(
    amqp_url: str, record_property: Any
) -> None:
    if not has_rabbitmqctl():
        pytest.skip("rabbitmqctl is not available to restart the broker")
    exchange, queue_name = unique("restart"), unique("restart-q")
    connection = await aio_pika.connect(amqp_url)  # a durable queue: it survives the restart
    channel = await connection.channel()
    ex = await channel.declare_exchange(exchange, "fanout", durable=True)
    queue = await channel.declare_queue(queue_name, durable=True)
    await queue.bind(ex)
    await connection.close()

    handler = RabbitMQHandler(amqp_url, exchange, kinds=["log"], name="fanout",
                              reconnect_interval=0.5, publish_timeout=3.0)  # fmt: skip
    errors: list[BaseException] = []
    produced = 0

    async def produce(telemetry: Telemetry, stop: asyncio.Event) -> None:
        nonlocal produced
        while not stop.is_set():
            for _ in range(50):
                try:
                    telemetry.logger.info("steady", i=produced)
                except BaseException as exc:
                    errors.append(exc)
                produced += 1
            await asyncio.sleep(0.01)

    try:
        async with telemetry_with(handler, batch_size=100) as telemetry:
            stop = asyncio.Event()
            producer = asyncio.create_task(produce(telemetry, stop))
            await asyncio.sleep(0.5)
            try:
                await asyncio.to_thread(rabbitmqctl, "stop_app")
                await asyncio.sleep(0.5)
            finally:
                await asyncio.to_thread(rabbitmqctl, "start_app")
            await wait_for_port(5672)
            await asyncio.sleep(0.5)
            stop.set()
            await producer
            await flush_until_confirmed(telemetry, within=60)
            stats = telemetry.stats()["fanout"]
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        received = await collect(queue, lambda r: len(set(first_seen_ids(r))) >= produced, 60)
        await connection.close()
    finally:
        await _ensure_broker_running()
        await _delete(amqp_url, exchange, queue_name)
    duplicates = len(received.records) - produced
    record_property("duplicate_records", duplicates)
    record_property("republished_messages", stats["handler"]["republished_messages"])
    print(
        f"\nbroker restart: {produced} records, {duplicates} duplicate records received, "
        f"{stats['handler']['republished_messages']} messages re-published"
    )
    assert errors == []
    assert sorted(set(first_seen_ids(received))) == list(range(produced))
    assert first_seen_ids(received) == list(range(produced))  # in order, duplicates aside
    assert stats["dropped"] == {}


async def _ensure_broker_running() -> None:
    try:
        await wait_for_port(5672, timeout=1)
    except OSError:
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await wait_for_port(5672)


async def _delete(url: str, exchange: str, queue: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()
