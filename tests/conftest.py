"""Shared fixtures. Tests create their own Telemetry instances; the default one is left alone."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from pontem_async import Telemetry
from pontem_async.testing import MemoryHandler


@pytest.fixture
def memory() -> MemoryHandler:
    return MemoryHandler(name="memory")


@pytest_asyncio.fixture
async def running(memory: MemoryHandler) -> AsyncIterator[Telemetry]:
    """A Telemetry on the test's loop with one MemoryHandler, shut down afterwards."""
    telemetry = Telemetry(
        "test-svc", handlers=[memory], flush_interval=0.01, install_signal_handlers=False
    )
    telemetry.start()
    yield telemetry
    await telemetry.shutdown(timeout=5)


@pytest.fixture
def sync_telemetry(memory: MemoryHandler) -> Iterator[Telemetry]:
    """A Telemetry with no running loop: it runs its private loop thread."""
    telemetry = Telemetry(
        "test-svc", handlers=[memory], flush_interval=0.01, install_signal_handlers=False
    )
    telemetry.start()
    yield telemetry
    telemetry.shutdown_sync(timeout=5)


# --- real services -------------------------------------------------------------------------------
# Tests that need the RabbitMQ broker or PostgreSQL take one of these fixtures. Without the service
# they skip; with PONTEM_REQUIRE_BROKER=1 / PONTEM_REQUIRE_DB=1 (set by .ci/run) they fail, so CI
# never counts a skipped test as done.

AMQP_URL = os.environ.get("PONTEM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "PONTEM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _need_service(what: str, host: str, port: int, require_var: str) -> None:
    if _port_open(host, port):
        return
    message = f"{what} is not answering on {host}:{port}"
    if os.environ.get(require_var) == "1":
        pytest.fail(f"{message}, and {require_var}=1 requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def amqp_url() -> str:
    """The broker's URL; skips (or fails under PONTEM_REQUIRE_BROKER=1) when it is down."""
    _need_service("RabbitMQ", "127.0.0.1", 5672, "PONTEM_REQUIRE_BROKER")
    return AMQP_URL


@pytest.fixture
def postgres_url() -> str:
    """PostgreSQL's SQLAlchemy URL; skips (or fails under PONTEM_REQUIRE_DB=1) when it is down."""
    _need_service("PostgreSQL", "127.0.0.1", 5432, "PONTEM_REQUIRE_DB")
    return POSTGRES_URL
