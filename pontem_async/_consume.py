"""The consumer side of RabbitMQ fan-out: ``pa.consume()``, records back as dicts.

Each consumer binds its own queue to the exchange, so every consumer receives every record
(fan-out): a file archiver, a live console and an alerting worker can run side by side. By
default the queue is exclusive (server-named, gone when the consumer disconnects: a live view);
a named queue is durable and keeps collecting while its consumer is away (an archiver that must
not miss anything).

Delivery is at-least-once on both sides. The publisher may send a message twice after a
reconnect (same ``message_id``); :class:`Consumer` remembers the last ``dedupe_window`` ids and
skips repeats, counting them in ``duplicates``. A message is acknowledged only after all its
records were handed out and the caller asked for the next one, so a consumer that crashes
mid-message gets it again from the broker.

    async with pa.consume("amqp://guest:guest@127.0.0.1/", "telemetry") as records:
        async for record in records:          # dicts, exactly as the JSONL lines
            print(record["kind"], record.get("body"))
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import zlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from types import TracebackType
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from pontem_async.handlers._amqp_url import (
    check_amqp_url,
    describe_error,
    mask_url,
)

__all__ = ["Consumer", "consume"]

_internal = logging.getLogger("pontem_async")
_EXCHANGE_TYPES = ("fanout", "topic", "direct")


class Consumer:
    """An async iterator of decoded records from a queue bound to ``exchange``; see
    :func:`consume`. Use it as ``async with`` (the queue is bound on entry, so nothing
    published afterwards is missed) or directly with ``async for``."""

    def __init__(
        self,
        url: str,
        exchange: str,
        queue: str | None = None,
        *,
        exchange_type: str = "fanout",
        bindings: str | Iterable[str] | None = None,
        durable: bool = True,
        dedupe_window: int = 10_000,
        prefetch: int = 64,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = check_amqp_url(url)
        if not isinstance(exchange, str) or not exchange:
            raise ValueError(f"exchange: expected a non-empty exchange name, got {exchange!r}")
        if exchange_type not in _EXCHANGE_TYPES:
            raise ValueError(
                f"exchange_type: expected one of {', '.join(_EXCHANGE_TYPES)}, "
                f"got {exchange_type!r}"
            )
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise ValueError(f"queue: expected a queue name or None, got {queue!r}")
        if isinstance(bindings, str):
            bindings = [bindings]
        keys = list(bindings) if bindings is not None else []
        if not keys:
            keys = ["#"] if exchange_type == "topic" else [""]
        if exchange_type == "direct" and keys == [""]:
            raise ValueError("bindings: a direct exchange needs the routing key(s) to receive")
        for name, value in (("dedupe_window", dedupe_window), ("prefetch", prefetch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
        self.exchange = exchange
        self.exchange_type = exchange_type
        self.queue_name = queue
        self.bindings = keys
        self.durable = durable
        self.dedupe_window = dedupe_window
        self.prefetch = prefetch
        self.connect_timeout = connect_timeout
        self.messages = 0
        """Messages received (duplicates included)."""
        self.records = 0
        """Records handed out."""
        self.duplicates = 0
        """Messages skipped because their ``message_id`` was seen within the window."""
        self.malformed = 0
        """Lines (or whole bodies) that could not be decoded, skipped."""
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._iterators: list[AsyncGenerator[dict[str, Any], None]] = []

    @property
    def url(self) -> str:
        """The broker URL, password masked."""
        return mask_url(self._url)

    @property
    def queue(self) -> str | None:
        """The queue's name once bound (server-named for an exclusive queue)."""
        return None if self._queue is None else self._queue.name

    async def start(self) -> Consumer:
        """Connect, declare the exchange and the queue, bind it. Raises ``ConnectionError``
        (password masked) when the broker cannot be reached."""
        if self._queue is not None:
            return self
        try:
            connection = await aio_pika.connect_robust(
                self._url,
                timeout=self.connect_timeout,
                client_properties={"connection_name": "pontem-async consume"},
            )
        except Exception as exc:
            raise ConnectionError(
                f"cannot connect to {self.url}: {describe_error(exc, self._url)}"
            ) from None
        self._connection = connection
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            exchange = await channel.declare_exchange(
                self.exchange, self.exchange_type, durable=self.durable
            )
            if self.queue_name is None:
                queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            else:
                queue = await channel.declare_queue(self.queue_name, durable=True)
            for key in self.bindings:
                await queue.bind(exchange, routing_key=key)
        except BaseException:
            await self.close()
            raise
        self._queue = queue
        return self

    async def close(self) -> None:
        """Disconnect; unacknowledged messages go back to the queue. Idempotent."""
        iterators, self._iterators = self._iterators, []
        for iterator in iterators:  # a loop left with break: stop its broker consumer first
            with contextlib.suppress(Exception):
                await iterator.aclose()
        connection, self._connection, self._queue = self._connection, None, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 5.0)
            except Exception as exc:  # closing a dead connection is not worth raising for
                _internal.debug("consume: closing %s: %s", self.url, exc)

    async def __aenter__(self) -> Consumer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        iterator = self._records()
        self._iterators.append(iterator)
        return iterator

    async def _records(self) -> AsyncGenerator[dict[str, Any], None]:
        await self.start()
        queue = self._queue
        assert queue is not None
        async with queue.iterator() as messages:
            async for message in messages:
                self.messages += 1
                if self._is_duplicate(message.message_id):
                    self.duplicates += 1
                    await message.ack()
                    continue
                for record in self._decode(message):
                    self.records += 1
                    yield record
                await message.ack()

    def _is_duplicate(self, message_id: str | None) -> bool:
        if message_id is None or not self.dedupe_window:
            return False
        seen = self._seen
        if message_id in seen:
            seen.move_to_end(message_id)
            return True
        seen[message_id] = None
        if len(seen) > self.dedupe_window:
            seen.popitem(last=False)
        return False

    def _decode(self, message: AbstractIncomingMessage) -> list[dict[str, Any]]:
        body = message.body
        if message.content_encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as exc:
                self._bad(f"message {message.message_id}: cannot gunzip its body ({exc})")
                return []
        out: list[dict[str, Any]] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                self._bad(f"message {message.message_id}: a line is not JSON")
                continue
            if isinstance(data, dict):
                out.append(data)
            elif isinstance(data, list):  # a JSON-array body (phanos, other publishers)
                out.extend(item for item in data if isinstance(item, dict))
            else:
                self._bad(f"message {message.message_id}: a line is not a JSON object")
        return out

    def _bad(self, what: str) -> None:
        self.malformed += 1
        if self.malformed <= 10:
            _internal.warning("consume: %s; skipped", what)


def consume(
    url: str,
    exchange: str = "telemetry",
    queue: str | None = None,
    *,
    exchange_type: str = "fanout",
    bindings: str | Iterable[str] | None = None,
    durable: bool = True,
    dedupe_window: int = 10_000,
    prefetch: int = 64,
    connect_timeout: float = 10.0,
) -> Consumer:
    """Records published by :class:`~pontem_async.handlers.RabbitMQHandler`, as dicts.

    Args:
        url: the broker (``amqp://user:password@host/``).
        exchange: the exchange the handlers publish to (declared if missing, with
            ``exchange_type`` and ``durable``: the handler's defaults).
        queue: None for an exclusive server-named queue (gone on disconnect); a name for a
            durable queue that keeps collecting while this consumer is away.
        bindings: routing keys to bind (``log.*.error`` on a topic exchange); default: all.
        dedupe_window: how many recent ``message_id`` values are remembered to skip
            re-published duplicates (0 turns de-duplication off).
        prefetch: unacknowledged messages the broker sends ahead.

    Returns:
        A :class:`Consumer`: ``async with consume(...) as records: async for record in
        records: ...``; its ``messages``, ``records``, ``duplicates`` and ``malformed``
        attributes count what it saw.
    """
    return Consumer(
        url,
        exchange,
        queue,
        exchange_type=exchange_type,
        bindings=bindings,
        durable=durable,
        dedupe_window=dedupe_window,
        prefetch=prefetch,
        connect_timeout=connect_timeout,
    )
