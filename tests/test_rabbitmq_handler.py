"""RabbitMQHandler against the real broker: fan-out, message format, topic routing, size split,
unroutable messages, wrong credentials, configuration, and credentials kept out of every
text a person or a log could see."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
from amqp_helpers import Received, collect, drain, exchange_with_queues, unique
from hypothesis import given, settings
from hypothesis import strategies as st

import pontem_async as pa
from pontem_async import ConfigError, Telemetry, dictconfig
from pontem_async.cli import main as cli_main
from pontem_async.handlers import RabbitMQHandler
from pontem_async.handlers._amqp_message import MessageBuilder
from pontem_async.records import LogRecord
from pontem_async.telemetry import _last_resort


@asynccontextmanager
async def telemetry_with(*handlers: Any, **options: Any) -> AsyncIterator[Telemetry]:
    telemetry = Telemetry(
        "checkout",
        handlers=list(handlers),
        install_signal_handlers=False,
        **{"flush_interval": 0.01, "queue_size": 100_000, **options},
    )
    telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.shutdown(timeout=10)


def ids_of(received: Received) -> list[int]:
    """The ``i`` attribute of the log records received (a drop also sends a metric record,
    ``pontem.dropped_records``, at shutdown)."""
    return [r["attributes"]["i"] for r in received.records if r["kind"] == "log"]


# ---------------------------------------------------------------------------- fan-out


@pytest.mark.broker
@pytest.mark.asyncio
async def test_three_queues_on_a_fanout_exchange_each_receive_every_record(amqp_url: str) -> None:
    exchange, n = unique("fanout"), 50_000
    async with exchange_with_queues(amqp_url, exchange, bindings=[(), (), ()]) as queues:
        handler = RabbitMQHandler(amqp_url, exchange, name="fanout")
        async with telemetry_with(handler) as telemetry:
            for i in range(n):
                telemetry.logger.info("order placed", i=i)
            assert await telemetry.flush(30)
            stats = telemetry.stats()["fanout"]
        for queue in queues:
            received = await collect(queue, lambda r: len(r.records) >= n)
            assert ids_of(received) == list(range(n))  # every id, once, in order
    assert stats["dropped"] == {}
    assert stats["handler"]["published_records"] == n
    assert stats["handler"]["buffered_records"] == 0


@pytest.mark.broker
@pytest.mark.asyncio
@pytest.mark.parametrize("compression", [None, "gzip"])
async def test_messages_carry_jsonl_bodies_and_the_documented_properties(
    amqp_url: str, compression: str | None
) -> None:
    exchange = unique("props")
    async with exchange_with_queues(amqp_url, exchange) as (queue,):
        handler = RabbitMQHandler(amqp_url, exchange, compression=compression, name="fanout")
        async with telemetry_with(handler, batch_size=10, flush_interval=60) as telemetry:
            for i in range(25):
                telemetry.logger.warn("disk almost full", i=i)
            assert await telemetry.flush(10)
        received = await drain(queue)
    assert [len(decoded) for decoded in map(_lines, received.messages)] == [10, 10, 5]
    for message in received.messages:
        assert message.content_type == "application/x-ndjson"
        assert message.content_encoding == ("gzip" if compression else "identity")
        assert message.type == "log"
        assert message.app_id == "checkout"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.headers == {"records": len(_lines(message))}
        assert isinstance(message.timestamp, dt.datetime)
        assert abs(message.timestamp.timestamp() - dt.datetime.now().timestamp()) < 60
    assert len(set(received.ids)) == 3
    first = received.records[0]
    assert (first["kind"], first["body"], first["severityText"]) == (
        "log", "disk almost full", "WARN"
    )  # fmt: skip
    assert first["resource"]["service.name"] == "checkout"
    assert ids_of(received) == list(range(25))


def _lines(message: Any) -> list[bytes]:
    body = message.body
    if message.content_encoding == "gzip":
        body = gzip.decompress(body)
    return body.splitlines()


# ---------------------------------------------------------------------------- topic routing


@pytest.mark.broker
@pytest.mark.asyncio
async def test_topic_consumer_bound_to_log_errors_receives_only_error_logs(amqp_url: str) -> None:
    exchange = unique("topic")
    bindings = [("log.*.error",), ("#",)]
    async with exchange_with_queues(amqp_url, exchange, "topic", bindings) as (errors, every):
        handler = RabbitMQHandler(amqp_url, exchange, exchange_type="topic", name="topic")
        async with telemetry_with(handler, batch_size=1000, flush_interval=60) as telemetry:
            log = telemetry.logger
            for i in range(30):  # one batch with every level interleaved
                [log.debug, log.info, log.warn, log.error, log.fatal][i % 5]("step", i=i)
            assert await telemetry.flush(10)
        only_errors = await drain(errors)
        everything = await drain(every)
    assert ids_of(only_errors) == [i for i in range(30) if i % 5 == 3]
    assert {m.routing_key for m in only_errors.messages} == {"log.checkout.error"}
    assert sorted(m.routing_key for m in everything.messages) == [
        "log.checkout.debug",
        "log.checkout.error",
        "log.checkout.fatal",
        "log.checkout.info",
        "log.checkout.warn",
    ]  # fmt: skip  -- one message per distinct key
    for message in everything.messages:  # order is kept within each key
        ids = [orjson.loads(line)["attributes"]["i"] for line in _lines(message)]
        assert ids == sorted(ids)
    assert sorted(ids_of(everything)) == list(range(30))


# ---------------------------------------------------------------------------- size split


@pytest.mark.broker
@pytest.mark.asyncio
async def test_batches_are_split_under_max_message_bytes_and_oversized_records_counted(
    amqp_url: str,
) -> None:
    exchange = unique("split")
    async with exchange_with_queues(amqp_url, exchange) as (queue,):
        handler = RabbitMQHandler(amqp_url, exchange, max_message_bytes=2048, name="split")
        async with telemetry_with(handler, batch_size=500, flush_interval=60) as telemetry:
            for i in range(200):
                telemetry.logger.info("x" * (i * 7 % 300), i=i)
            telemetry.logger.info("y" * 5000, i=-1)  # alone larger than a message may be
            assert await telemetry.flush(10)
            stats = telemetry.stats()["split"]
        received = await drain(queue)
    assert all(len(m.body) <= 2048 for m in received.messages)
    assert len(received.messages) > 10
    assert ids_of(received) == list(range(200))
    assert stats["dropped"] == {"too_large": 1}


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=700), max_size=60),
    max_bytes=st.integers(min_value=150, max_value=3000),
)
def test_split_keeps_order_bounds_every_body_and_counts_what_cannot_fit(
    sizes: list[int], max_bytes: int
) -> None:
    too_large: list[int] = []
    builder = MessageBuilder(
        use_key=False,
        routing_key="{kind}",
        max_message_bytes=max_bytes,
        compression=None,
        id_prefix="p",
        on_too_large=too_large.append,
    )
    batch = [LogRecord(1, 9, "b" * size, {"i": i}) for i, size in enumerate(sizes)]
    messages = asyncio.run(builder.build(batch))
    decoded = [orjson.loads(line) for m in messages for line in m.body.splitlines()]
    fitting = [i for i, record in enumerate(batch) if _line_size(record) <= max_bytes]
    assert [d["attributes"]["i"] for d in decoded] == fitting
    assert all(m.size <= max_bytes for m in messages)
    assert sum(too_large) == len(batch) - len(fitting)
    assert [m.seq for m in messages] == list(range(len(messages)))


def _line_size(record: LogRecord) -> int:
    from pontem_async.encoding.jsonl import encode_line

    return len(encode_line(record))


# ---------------------------------------------------------------------------- unroutable


@pytest.mark.broker
@pytest.mark.asyncio
async def test_unroutable_messages_are_counted_not_retried_and_not_an_error(amqp_url: str) -> None:
    exchange = unique("nobody")
    handler = RabbitMQHandler(amqp_url, exchange, name="fanout")
    try:
        async with telemetry_with(handler, batch_size=10, flush_interval=60) as telemetry:
            for i in range(25):
                telemetry.logger.info("nobody listens", i=i)
            assert await telemetry.flush(10)  # not a failure
            stats = telemetry.stats()["fanout"]
    finally:
        async with exchange_with_queues(amqp_url, exchange, bindings=[]):
            pass  # deletes the exchange
    assert stats["dropped"] == {"unroutable": 25}
    assert stats["failed_batches"] == 0
    handler_stats = stats["handler"]
    assert (handler_stats["unroutable_messages"], handler_stats["unroutable_records"]) == (3, 25)
    assert (handler_stats["published_records"], handler_stats["buffered_records"]) == (0, 0)


# ---------------------------------------------------------------------------- credentials


PASSWORD = "s3cr3t-Pw-7781"


@pytest.mark.broker
@pytest.mark.asyncio
async def test_wrong_password_is_logged_clearly_records_buffered_then_dropped(
    amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    exchange = unique("authfail")
    url = amqp_url.replace("guest:guest@", f"guest:{PASSWORD}@")
    handler = RabbitMQHandler(
        url, exchange, reconnect_interval=0.2, connect_timeout=1, kinds=["log"], name="fanout"
    )
    caplog.set_level(logging.DEBUG)  # aiormq logs every frame at DEBUG, the login one too
    async with telemetry_with(handler, batch_size=10, flush_interval=0.01) as telemetry:
        for i in range(30):
            telemetry.logger.info("still running", i=i)  # the application never notices
        assert not await telemetry.flush(2)
        stats = telemetry.stats()["fanout"]
        assert stats["handler"]["buffered_records"] == 30
        assert stats["handler"]["connected"] is False
        assert stats["dropped"] == {}
        await asyncio.sleep(0.5)  # several failed attempts: still one error in the log
    after = telemetry.stats()["fanout"]
    assert after["dropped"] == {"broker_unavailable": 30}
    errors = [r for r in caplog.records if r.name == "pontem_async" and r.levelno >= logging.ERROR]
    refused = [r for r in errors if "refused the credentials" in r.getMessage()]
    assert len(refused) == 1
    assert "amqp://guest:***@127.0.0.1:5672/" in refused[0].getMessage()
    everything = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert PASSWORD not in everything


@pytest.mark.broker
@pytest.mark.asyncio
async def test_buffer_full_during_an_outage_counts_the_overflow_as_dropped(amqp_url: str) -> None:
    url = amqp_url.replace("guest:guest@", f"guest:{PASSWORD}@")
    handler = RabbitMQHandler(
        url,
        unique("full"),
        max_message_bytes=4096,
        buffer_bytes=4096,
        connect_timeout=1,
        kinds=["log"],  # not the pontem.dropped_records metric sent at shutdown
        name="fanout",
    )
    async with telemetry_with(handler, batch_size=20, flush_interval=0.01) as telemetry:
        for i in range(200):
            telemetry.logger.info("m" * 100, i=i)
        await telemetry.flush(2)
        stats = telemetry.stats()["fanout"]
    kept = stats["handler"]["buffered_records"]
    assert 0 < kept < 200
    assert stats["dropped"] == {"buffer_full": 200 - kept}
    final = telemetry.stats()["fanout"]["dropped"]
    assert final == {"buffer_full": 200 - kept, "broker_unavailable": kept}


def test_credentials_never_appear_in_reprs_errors_or_check_config(tmp_path: Path) -> None:
    url = f"amqp://svc:{PASSWORD}@broker.internal:5672/prod"
    handler = RabbitMQHandler(url, "telemetry", name="fanout")
    texts = [repr(handler), str(handler.describe()), handler.url]
    for bad in (
        {"exchange_type": "headers"},
        {"routing_key": "{kind}.{password}"},
        {"url": url.replace("amqp://", "http://")},
        {"max_message_bytes": 0},
    ):
        entry = {"class": "pontem_async.handlers.RabbitMQHandler", "url": url, **bad}
        with pytest.raises(ConfigError) as info:
            pa.dict_config({"service": {"name": "s"}, "handlers": {"fanout": entry}}, start=False)
        texts.append(str(info.value))
        assert info.value.key_path == f"handlers.fanout.{next(iter(bad))}"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "service": {"name": "s"},
                "handlers": {
                    "fanout": {"class": "pontem_async.handlers.RabbitMQHandler", "url": url},
                    "other": {
                        "class": "pontem_async.handlers.RabbitMQHandler",
                        "url": "amqp://svc@broker.internal/",
                        "password": PASSWORD,
                    },
                },
            }
        )
    )
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["check-config", str(config), "--json"]) == 0
    shown = json.loads(out.getvalue())["handlers"]
    assert shown["fanout"]["url"] == "amqp://svc:***@broker.internal:5672/prod"
    assert shown["other"]["password"] == "***"
    texts.append(out.getvalue())
    assert handler.url == "amqp://svc:***@broker.internal:5672/prod"
    assert all(PASSWORD not in text for text in texts), texts


# ---------------------------------------------------------------------------- configuration


@pytest.mark.broker
@pytest.mark.asyncio
async def test_dict_config_builds_it_and_pontem_amqp_url_overrides_the_file(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange = unique("config")
    monkeypatch.setenv("PONTEM_AMQP_URL", amqp_url)
    entry = {
        "class": "pontem_async.handlers.RabbitMQHandler",
        "url": "amqp://guest:guest@unreachable.invalid/",
        "exchange": exchange,
        "compression": "gzip",
        "kinds": ["log"],
    }
    async with exchange_with_queues(amqp_url, exchange) as (queue,):
        telemetry = pa.dict_config(
            {"service": {"name": "configured"}, "handlers": {"fanout": entry}},
            install_signal_handlers=False,
        )
        try:
            (handler,) = telemetry.handlers
            assert isinstance(handler, RabbitMQHandler)
            assert handler.url == amqp_url.replace("guest:guest@", "guest:***@")
            pa.logger.error("configured from a dict")
            assert await telemetry.flush(10)
        finally:  # the default instance back to its last-resort configuration
            await telemetry.shutdown(timeout=5)
            telemetry.configure(handlers=_last_resort(), install_signal_handlers=False, start=False)
            dictconfig._applied = None
        received = await collect(queue, lambda r: len(r.records) >= 1)
    assert received.records[0]["body"] == "configured from a dict"
    assert received.messages[0].app_id == "configured"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"exchange_type": "x-delayed"}, "exchange_type: expected one of fanout, topic, direct"),
        ({"routing_key": "{kind}.{host}"}, "routing_key: unknown field {host}"),
        ({"compression": "zstd"}, "compression: expected None or 'gzip'"),
        ({"publish_timeout": 0}, "publish_timeout: expected a positive number"),
        (
            {"max_message_bytes": 2048, "buffer_bytes": 1024},
            "buffer_bytes: must hold at least one message",
        ),
        ({"url": "localhost:5672"}, "url: expected an amqp:// URL"),
        ({"exchange": "", "exchange_type": "fanout"}, "exchange: the default exchange"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        RabbitMQHandler(**arguments)
