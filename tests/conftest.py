"""Shared fixtures. Tests create their own Telemetry instances; the default one is left alone."""

from __future__ import annotations

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
