"""RabbitMQHandler: records fanned out through a RabbitMQ exchange, delivered at least once.

Producer services publish; any number of consumers (a file archiver, a live console, an
alerting worker) each bind their own queue to the exchange and each receive every record.

Why it is written the way it is:

- **The application never waits for the broker.** :meth:`open` starts connecting in the
  background (aio-pika ``connect_robust``) and returns; while the broker is away, batches go to
  a bounded retry buffer (``_amqp_buffer``) and the outage is logged once, with the URL's
  password masked. After the first connection, aio-pika's robust connection reconnects by
  itself and re-declares the exchange.
- **At-least-once, in order.** A channel with publisher confirms; a message leaves the buffer
  only when the broker confirmed it. Every publish runs under ``publish_timeout`` (a publish
  can hang during a reconnect); a message whose confirm does not arrive stays at the head of
  the buffer and is published again after reconnect, before anything newer. So nothing is lost
  but a message may arrive twice: its ``message_id`` is kept, and consumers drop duplicates by
  it (:func:`pontem_async.consume` does). Re-published messages that may be duplicates are
  counted (``republished_messages``).
- **Bounded, with a disk overflow.** ``buffer_bytes`` of message bodies in memory; beyond, with
  ``spill_dir``, messages go to files there (``spill_max_bytes``) replayed in order after
  reconnect, also by the next process if this one exits first. Beyond the limits, records are
  counted as dropped (``buffer_full``, ``spill_full``) in ``telemetry.stats()`` and in
  ``pontem.dropped_records``: nothing is lost silently.
- **Unroutable is not an error.** Messages are published ``mandatory``; one the broker returns
  (a fanout exchange with no queue bound: no consumer is running) is counted as ``unroutable``
  and not retried.
- **Messages** (``_amqp_message``): one per batch and routing key, JSONL body, size-bounded.

``emit`` returns once the batch is confirmed or safely buffered; ``flush`` returns when the
buffer is empty and raises at once while the broker is unreachable (the records stay buffered);
``close`` waits up to its timeout for the buffer to drain, then writes what is left to
``spill_dir`` or counts it as dropped (``broker_unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from pontem_async.handlers._amqp_buffer import RetryBuffer, UnreadableSpill
from pontem_async.handlers._amqp_message import MessageBuilder, Outgoing, check_routing_key
from pontem_async.handlers._amqp_url import (
    check_amqp_url,
    describe_error,
    mask_url,
)
from pontem_async.handlers.base import Handler
from pontem_async.records import Record
from pontem_async.settings import PONTEM_AMQP_URL

__all__ = ["BrokerUnavailableError", "RabbitMQHandler"]

_internal = logging.getLogger("pontem_async")
_EXCHANGE_TYPES = ("fanout", "topic", "direct")
_CLOSE_TIMEOUT = 5.0


class BrokerUnavailableError(ConnectionError):
    """``flush`` could not confirm everything: the broker is unreachable (or too slow). The
    records are not lost: they stay in the retry buffer and are published after reconnect."""


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        what = "a positive integer" if integer else "a positive number of seconds"
        raise ValueError(f"{name}: expected {what}, got {value!r}")


class RabbitMQHandler(Handler):
    """Publish records to a RabbitMQ exchange; see the module docstring.

    Args:
        url: the broker, ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS). In
            ``dict_config`` the ``PONTEM_AMQP_URL`` environment variable overrides the file.
        exchange: the exchange's name; declared on connect (it may already exist, with the
            same type and durability).
        exchange_type: ``fanout`` (every bound queue gets everything), ``topic`` or ``direct``.
        routing_key: template of each record's key, fields ``{kind}``, ``{service}``,
            ``{level}`` (``log.checkout.error``; ``level`` is ``none`` for other kinds). Not
            used on a fanout exchange.
        durable: declare the exchange durable (survives a broker restart).
        persistent: publish messages persistent (written to disk by the broker when queued
            on a durable queue).
        compression: None or ``"gzip"`` (the body; ``content_encoding`` says which).
        password: the password, when it should not be written into ``url``.
        max_message_bytes: most uncompressed body bytes per message; bigger batches are split.
        publish_timeout: seconds a publish may wait for the broker's confirm before the
            message goes back to the retry buffer.
        connect_timeout: seconds one connection attempt may take.
        reconnect_interval: seconds between connection attempts while the broker is away.
        buffer_bytes: memory held by messages waiting for the broker.
        spill_dir: directory for messages beyond ``buffer_bytes`` (None: count them as
            dropped). Kept across restarts: a new process publishes what is left there first.
        spill_max_bytes: most bytes kept in ``spill_dir``.
        **options: ``name``, ``kinds``, ``level``, ``filter`` (see :class:`Handler`).

    Raises:
        TypeError, ValueError: an argument has the wrong type or value; the message starts
            with the argument's name and never shows a password.
    """

    env_overrides: ClassVar[dict[str, str]] = {"url": PONTEM_AMQP_URL}
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1/",
        exchange: str = "telemetry",
        exchange_type: str = "fanout",
        routing_key: str = "{kind}.{service}.{level}",
        durable: bool = True,
        persistent: bool = True,
        compression: str | None = None,
        *,
        password: str | None = None,
        max_message_bytes: int = 1024 * 1024,
        publish_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
        buffer_bytes: int = 64 * 1024 * 1024,
        spill_dir: str | os.PathLike[str] | None = None,
        spill_max_bytes: int = 1024 * 1024 * 1024,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        url = check_amqp_url(url)
        if password is not None:
            if not isinstance(password, str):
                raise TypeError(f"password: expected a string, got {type(password).__name__}")
            url = _with_password(url, password)
        if not isinstance(exchange, str):
            raise TypeError(f"exchange: expected a string, got {type(exchange).__name__}")
        if exchange_type not in _EXCHANGE_TYPES:
            raise ValueError(
                f"exchange_type: expected one of {', '.join(_EXCHANGE_TYPES)}, "
                f"got {exchange_type!r}"
            )
        if exchange == "" and exchange_type != "direct":
            raise ValueError("exchange: the default exchange ('') is a direct exchange")
        for arg, flag in (("durable", durable), ("persistent", persistent)):
            if not isinstance(flag, bool):
                raise TypeError(f"{arg}: expected a bool, got {type(flag).__name__}")
        if compression not in (None, "gzip"):
            raise ValueError(f"compression: expected None or 'gzip', got {compression!r}")
        for arg, value in (
            ("max_message_bytes", max_message_bytes),
            ("buffer_bytes", buffer_bytes),
            ("spill_max_bytes", spill_max_bytes),
        ):
            _positive(arg, value, integer=True)
        for arg, seconds in (
            ("publish_timeout", publish_timeout),
            ("connect_timeout", connect_timeout),
            ("reconnect_interval", reconnect_interval),
        ):
            _positive(arg, seconds)
        if buffer_bytes < max_message_bytes:
            raise ValueError(
                f"buffer_bytes: must hold at least one message of max_message_bytes "
                f"({max_message_bytes}), got {buffer_bytes}"
            )
        if spill_dir is not None and not isinstance(spill_dir, str | os.PathLike):
            raise TypeError(f"spill_dir: expected a directory path, got {type(spill_dir).__name__}")
        self._url = url
        self.exchange = exchange
        self.exchange_type = exchange_type
        self.routing_key = check_routing_key(routing_key)
        self.durable = durable
        self.persistent = persistent
        self.compression = compression
        self.max_message_bytes = max_message_bytes
        self.publish_timeout = float(publish_timeout)
        self.connect_timeout = float(connect_timeout)
        self.reconnect_interval = float(reconnect_interval)
        self.buffer_bytes = buffer_bytes
        self.spill_dir: str | None = (
            None if spill_dir is None else os.path.abspath(os.fspath(spill_dir))
        )
        self.spill_max_bytes = spill_max_bytes
        self._reset()

    def _reset(self) -> None:
        """The state of a handler not opened yet (also after ``close``)."""
        self._opened = False
        self._closing = False
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._connector: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()
        self._first_attempt = asyncio.Event()
        self._down_reported: str | None = None  # the cause logged for the current outage
        self._buffer = RetryBuffer(self.buffer_bytes, self.spill_dir, self.spill_max_bytes)
        self._builder = MessageBuilder(
            use_key=self.exchange_type != "fanout",
            routing_key=self.routing_key,
            max_message_bytes=self.max_message_bytes,
            compression=self.compression,
            id_prefix=uuid.uuid4().hex[:16],
            on_too_large=lambda n: self._drop("too_large", n),
        )
        if not hasattr(self, "_counters"):
            self._counters: dict[str, int] = dict.fromkeys(
                (
                    "published_messages", "published_records", "republished_messages",
                    "republished_records", "unroutable_messages", "unroutable_records",
                ),
                0,
            )  # fmt: skip
            self._dropped: dict[str, int] = {}

    @property
    def url(self) -> str:
        """The broker URL with its password masked (the real one is never shown)."""
        return mask_url(self._url)

    @property
    def connected(self) -> bool:
        """Whether the handler holds a live connection to the broker right now."""
        connection = self._connection
        return (
            connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and self._exchange is not None
        )

    # ------------------------------------------------------------------ the contract

    async def open(self) -> None:
        """Start connecting in the background; waits at most ``connect_timeout`` for the first
        attempt, and never fails because the broker is down."""
        if self._opened:
            return
        self._opened = True
        try:
            self._builder.next_seq = await self._buffer.open()
        except OSError as exc:
            _internal.warning(
                "handler %r: cannot use spill_dir %s (%s); messages beyond buffer_bytes will "
                "be counted as dropped",
                self.name,
                self.spill_dir,
                exc,
            )
            self._buffer.spill_dir = None
        self._connector = asyncio.get_running_loop().create_task(
            self._connect(), name=f"pontem-async:{self.name}:connect"
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), self.connect_timeout)

    async def emit(self, batch: Sequence[Record]) -> None:
        """Publish ``batch`` and wait for the broker's confirms; while the broker is away (or
        a backlog is being re-published), buffer it instead and return."""
        if not self._opened:
            await self.open()
        for message in await self._builder.build(batch):
            reason = await self._buffer.push(message)
            if reason is not None:
                self._drop(reason, message.records)
        if self._sending.locked() or not self.connected:
            self._kick()
            return
        async with self._sending:
            drained = await self._drain()
        if not drained:
            self._kick()

    async def flush(self, timeout: float | None = None) -> None:
        """Return once every message is confirmed. Raises :class:`BrokerUnavailableError` at
        once while the broker is unreachable, or when ``timeout`` passes first; the records
        stay buffered either way."""
        if not len(self._buffer) and not self._sending.locked():
            return
        self._kick()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while len(self._buffer) or self._sending.locked():
            if not self.connected or (deadline is not None and loop.time() >= deadline):
                raise BrokerUnavailableError(
                    f"handler {self.name!r}: the broker at {self.url} is not confirming; "
                    f"records stay in the retry buffer and are published after reconnect"
                )
            await asyncio.sleep(0.01)

    async def close(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for the buffer to drain, keep what is left in ``spill_dir``
        (or count it as dropped), then close the connection. Idempotent."""
        if not self._opened or self._closing:
            return
        self._closing = True
        wait = _CLOSE_TIMEOUT if timeout is None else timeout
        if len(self._buffer) and not self.connected:
            # give a connection in progress (a broker coming back) a short chance
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._until_connected(), min(wait, self.connect_timeout))
        with contextlib.suppress(BrokerUnavailableError):
            await self.flush(wait)
        for task in (self._replayer, self._connector):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._keep_or_drop_leftovers()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)
        self._reset()

    async def _keep_or_drop_leftovers(self) -> None:
        if not len(self._buffer):
            return
        kept = await self._buffer.persist()
        lost = self._buffer.clear()
        if kept:
            _internal.warning(
                "handler %r: %d records not confirmed by the broker at %s are kept in %s and "
                "will be published by the next handler using that spill_dir",
                self.name,
                kept,
                self.url,
                self.spill_dir,
            )
        if lost:
            self._drop("broker_unavailable", lost)
            _internal.warning(
                "handler %r: %d records could not be published to %s before close; counted "
                "as dropped (broker_unavailable)",
                self.name,
                lost,
                self.url,
            )

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"connected": self.connected}
        out.update(self._counters)
        out.update(self._buffer.stats())
        out["dropped"] = dict(self._dropped)
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            url=self.url,
            exchange=self.exchange,
            exchange_type=self.exchange_type,
            routing_key=self.routing_key,
            durable=self.durable,
            persistent=self.persistent,
            compression=self.compression,
            max_message_bytes=self.max_message_bytes,
            buffer_bytes=self.buffer_bytes,
            spill_dir=self.spill_dir,
        )
        return info

    def __repr__(self) -> str:
        return (
            f"<RabbitMQHandler name={self.name!r} url={self.url!r} "
            f"exchange={self.exchange!r} ({self.exchange_type})>"
        )

    # ------------------------------------------------------------------ publishing

    def _drop(self, reason: str, n: int) -> None:
        if n <= 0:
            return
        self._dropped[reason] = self._dropped.get(reason, 0) + n
        self.count_dropped(reason, n)

    async def _drain(self) -> bool:
        """Publish from the head of the buffer until it is empty (True) or a publish fails
        (False). The caller holds ``_sending``."""
        while True:
            try:
                message = await self._buffer.head()
            except UnreadableSpill as exc:
                self._drop("spill_unreadable", exc.records)
                continue
            if message is None:
                return True
            if not await self._publish(message):
                return False
            await self._buffer.pop(message)

    async def _publish(self, message: Outgoing) -> bool:
        """One publish under ``publish_timeout``; True once the broker confirmed it."""
        exchange = self._exchange
        if exchange is None or not self.connected:
            return False
        again = message.sent
        message.sent = True
        body = aio_pika.Message(
            message.body,
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT
                if self.persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
            **message.properties(),
        )
        try:
            result = await asyncio.wait_for(
                exchange.publish(body, message.routing_key, mandatory=True),
                self.publish_timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._outage(exc)
            return False
        counters = self._counters
        if isinstance(result, aiormq.abc.DeliveredMessage):  # returned: no queue bound
            counters["unroutable_messages"] += 1
            counters["unroutable_records"] += message.records
            self._drop("unroutable", message.records)
        else:
            counters["published_messages"] += 1
            counters["published_records"] += message.records
        if again:
            counters["republished_messages"] += 1
            counters["republished_records"] += message.records
        return True

    def _kick(self) -> None:
        """Make sure a background task re-publishes the buffer once the broker answers."""
        if self._closing or not len(self._buffer):
            return
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.get_running_loop().create_task(
                self._replay(), name=f"pontem-async:{self.name}:replay"
            )

    async def _replay(self) -> None:
        pause = 0.05
        while len(self._buffer):
            await self._until_connected()
            async with self._sending:
                drained = await self._drain()
            if drained:
                break
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.reconnect_interval)
        self._recovered()

    async def _until_connected(self) -> None:
        while not self.connected:
            connection = self._connection
            if connection is None or connection.is_closed:
                await asyncio.sleep(0.05)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(connection.connected.wait(), self.reconnect_interval)
            if not self.connected:
                await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ connecting

    async def _connect(self) -> None:
        """Until the first connection succeeds: try, report the failure once, wait, retry.
        Afterwards aio-pika's robust connection reconnects by itself."""
        pause = min(0.1, self.reconnect_interval)
        while not self._closing:
            connection: AbstractRobustConnection | None = None
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    timeout=self.connect_timeout,
                    reconnect_interval=self.reconnect_interval,
                    client_properties={"connection_name": f"pontem-async {self.name}"},
                )
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.declare_exchange(
                    self.exchange,
                    self.exchange_type,
                    durable=self.durable,
                    timeout=self.connect_timeout,
                )
            except asyncio.CancelledError:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)
                raise
            except Exception as exc:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)
                self._outage(exc, connecting=True)
                self._first_attempt.set()
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.reconnect_interval)
                continue
            connection.close_callbacks.add(self._on_connection_lost)
            connection.reconnect_callbacks.add(self._on_reconnected)
            self._connection, self._exchange = connection, exchange
            self._first_attempt.set()
            _internal.info(
                "handler %r: connected to %s, exchange %r (%s)",
                self.name,
                self.url,
                self.exchange,
                self.exchange_type,
            )
            self._kick()
            if not len(self._buffer):
                self._recovered()
            return

    def _outage(self, exc: BaseException, *, connecting: bool = False) -> None:
        """Log the cause of an outage once (a new cause is logged again)."""
        if isinstance(exc, asyncio.TimeoutError | TimeoutError) and not connecting:
            cause = f"no confirm within publish_timeout={self.publish_timeout}s"
        else:
            cause = describe_error(exc, self._url)
        kind = type(exc).__name__
        if self._down_reported == kind:
            return
        self._down_reported = kind
        buffering = (
            f"records are buffered (up to {self.buffer_bytes} bytes in memory"
            + (f", then {self.spill_max_bytes} in {self.spill_dir}" if self.spill_dir else "")
            + ") and published once it answers; beyond that they are counted as dropped"
        )
        if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
            _internal.error(
                "handler %r: the broker at %s refused the credentials (%s): check the user "
                "and password; %s",
                self.name,
                self.url,
                cause,
                buffering,
            )
        elif isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
            _internal.error(
                "handler %r: exchange %r exists on %s with other settings (%s); %s",
                self.name,
                self.exchange,
                self.url,
                cause,
                buffering,
            )
        else:
            _internal.warning(
                "handler %r: cannot %s the broker at %s (%s); %s; retrying in the background",
                self.name,
                "connect to" if connecting else "publish to",
                self.url,
                cause,
                buffering,
            )

    def _recovered(self) -> None:
        if self._down_reported is not None:
            self._down_reported = None
            _internal.info(
                "handler %r: the broker at %s confirms again; buffered records are published",
                self.name,
                self.url,
            )

    def _on_connection_lost(self, _: Any, exc: BaseException | None = None) -> None:
        if self._closing or isinstance(exc, asyncio.CancelledError):
            return
        if exc is not None:
            self._outage(exc)

    def _on_reconnected(self, *_: Any) -> None:
        self._kick()
        if not len(self._buffer):
            self._recovered()


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "guest"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
