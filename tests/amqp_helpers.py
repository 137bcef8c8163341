"""Helpers for the RabbitMQ tests: unique names, reading queues back, a loopback TCP proxy that
can cut the connection to the (real) broker, and ``rabbitmqctl``.

Nothing here imitates the broker: every byte goes to the RabbitMQ server on 127.0.0.1:5672.
The proxy only decides whether a connection to it gets through, so tests can take "the
broker" away and bring it back without restarting the server other tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import shutil
import socket
import subprocess
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672


def unique(what: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"pa-test-{what}-{uuid.uuid4().hex[:10]}"


def decode(message: AbstractIncomingMessage) -> list[dict[str, Any]]:
    body = message.body
    if message.content_encoding == "gzip":
        body = gzip.decompress(body)
    return [orjson.loads(line) for line in body.splitlines()]


@dataclass
class Received:
    """What a queue delivered: messages in order, with their records."""

    messages: list[AbstractIncomingMessage] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # message ids, in arrival order

    def add(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        self.ids.append(str(message.message_id))
        self.records.extend(decode(message))

    @property
    def duplicates(self) -> int:
        return len(self.ids) - len(set(self.ids))


async def drain(queue: AbstractQueue, received: Received | None = None) -> Received:
    """Everything the queue holds right now (``basic.get`` until it is empty). After a
    handler's flush every confirmed message is in the queue, so nothing is missed."""
    received = received if received is not None else Received()
    while True:
        message = await queue.get(no_ack=True, fail=False, timeout=5)
        if message is None:
            return received
        received.add(message)


async def collect(
    queue: AbstractQueue, done: Callable[[Received], bool], timeout: float = 30.0
) -> Received:
    """Read from ``queue`` until ``done(received)``; fails after ``timeout`` seconds."""
    received = Received()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(received):
        if loop.time() > deadline:
            raise AssertionError(
                f"queue {queue.name}: gave up after {timeout}s with {len(received.records)} "
                f"records in {len(received.messages)} messages"
            )
        before = len(received.messages)
        await drain(queue, received)
        if len(received.messages) == before:
            await asyncio.sleep(0.02)
    return received


@contextlib.asynccontextmanager
async def exchange_with_queues(
    url: str,
    exchange: str,
    exchange_type: str = "fanout",
    bindings: Iterable[Iterable[str]] = ((),),
    *,
    durable_queues: bool = False,
) -> AsyncIterator[list[AbstractQueue]]:
    """Declare ``exchange`` (durable, as the handler does) and one queue per entry of
    ``bindings`` (each bound with its keys, or with '' when empty); delete them all after."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, exchange_type, durable=True)
        queues = []
        for keys in bindings:
            if durable_queues:
                queue = await channel.declare_queue(unique("q"), durable=True)
            else:
                queue = await channel.declare_queue(exclusive=True)
            for key in list(keys) or [""]:
                await queue.bind(ex, key)
            queues.append(queue)
        try:
            yield queues
        finally:
            for queue in queues:
                with contextlib.suppress(Exception):
                    await queue.delete(if_unused=False, if_empty=False)
            with contextlib.suppress(Exception):
                await ex.delete()
    finally:
        await connection.close()


async def delete_exchange(url: str, name: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(name)
    finally:
        await connection.close()


# ---------------------------------------------------------------------------- a loopback proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    """A TCP proxy on a loopback port to the real broker. ``stop()`` closes the port and every
    connection through it (the broker "goes away"); ``start()`` opens it again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(BROKER_HOST, BROKER_PORT)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._pipes.difference_update((writer, up_writer))


# ---------------------------------------------------------------------------- rabbitmqctl


def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl`` (the tests that need it check :func:`has_rabbitmqctl` first)."""
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def has_rabbitmqctl() -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        rabbitmqctl("status")
    except (subprocess.SubprocessError, OSError):
        return False
    return True


async def wait_for_port(port: int, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


# ---------------------------------------------------------------------------- a sync reader


class ThreadedQueue:
    """An exclusive queue bound to ``exchange``, read from a thread of its own, for code that
    cannot await (the handler contract's ``read_back``). Deleted with the exchange when the
    owner object is garbage collected (or at exit)."""

    def __init__(self, url: str, exchange: str, owner: object) -> None:
        self.url, self.exchange = url, exchange
        self.bodies: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._setup())
        weakref.finalize(owner, self._cleanup, self._loop, self._thread, self._teardown)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _setup(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        channel = await self._connection.channel()
        self._exchange = await channel.declare_exchange(self.exchange, "fanout", durable=True)
        self._queue = await channel.declare_queue(exclusive=True)
        await self._queue.bind(self._exchange)

    async def _teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self._exchange.delete()
        with contextlib.suppress(Exception):
            await self._connection.close()

    @staticmethod
    def _cleanup(
        loop: asyncio.AbstractEventLoop, thread: threading.Thread, teardown: Callable[[], Any]
    ) -> None:
        if loop.is_closed() or not thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(teardown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()

    def read_back(self) -> list[str]:
        received = self._call(drain(self._queue))
        self.bodies.extend(record["body"] for record in received.records)
        return list(self.bodies)


def broker_url() -> str:
    """The ``amqp_url`` fixture's logic, for code that cannot take fixtures (contract
    factories): skips without a broker, fails under ``PONTEM_REQUIRE_BROKER=1``."""
    import os

    import pytest

    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=1).close()
    except OSError:
        message = f"RabbitMQ is not answering on {BROKER_HOST}:{BROKER_PORT}"
        if os.environ.get("PONTEM_REQUIRE_BROKER") == "1":
            pytest.fail(f"{message}, and PONTEM_REQUIRE_BROKER=1 requires it", pytrace=False)
        pytest.skip(message)
    return os.environ.get("PONTEM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
