"""The tiny interface every peer adapter implements.

An adapter wraps one logging library configured to write JSON lines into a file under the
directory it is given. The harness (``bench/_measure.py``) drives it in a fresh subprocess:

    peer.setup(workdir)        configure the library; output files go under ``workdir``
    peer.log_range(a, b)       log records ``a .. b-1`` as fast as the caller can: the
                               equivalent of ``logger.info("bench message", k="v", i=i)``
    peer.finish()              flush and shut the library down; when it returns, every record
                               the library did not drop has been written to ``workdir``

The harness then ``fsync``s every file under ``workdir`` itself, so "durable" means the same
thing for every peer. ``log_range`` writes the call literally in its own loop (instead of the
harness calling a ``log_one(i)`` per record) so the timed cost is the logging call plus a
``for`` loop, not an extra Python function call per record.

Every record carries its sequence number ``i`` as an attribute; the harness finds it in each
line (top-level ``"i"`` or ``"attributes": {"i": ...}``) to count unique records on disk.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

__all__ = ["MESSAGE", "AsyncPeer", "Peer", "SyncPeer"]

MESSAGE = "bench message"
"""The log body every peer writes."""


class Peer(abc.ABC):
    """What both kinds of adapter share: a label, the packages to report, a config note."""

    label: ClassVar[str]
    """Row label in the results table."""
    packages: ClassVar[tuple[str, ...]]
    """Distributions whose installed versions the harness prints."""
    config: ClassVar[str]
    """One line saying how the library is configured (printed under the table)."""
    finish_after_latency: ClassVar[bool] = True
    """Whether the latency run calls ``finish`` (False when draining the backlog the latency
    run leaves behind would take far longer than the measurement itself)."""

    @abc.abstractmethod
    def log_range(self, start: int, stop: int) -> None:
        """Log records ``start`` .. ``stop - 1`` (attribute ``i`` = the number)."""

    def details(self) -> dict[str, Any]:
        """Library-side counters worth reporting after ``finish`` (drops, ...), JSON-able."""
        return {}


class SyncPeer(Peer):
    """A library used from plain synchronous code (background threads are its own business)."""

    @abc.abstractmethod
    def setup(self, workdir: str) -> None:
        """Configure the library to write under ``workdir``."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Flush and shut down; return once everything not dropped is written."""


class AsyncPeer(Peer):
    """A library used from inside a running asyncio loop (``setup``/``finish`` run on it).

    ``log_range`` is still a plain call made on the loop's thread; the harness yields to the
    loop between chunks of records (see ``_measure.py``).
    """

    @abc.abstractmethod
    async def setup(self, workdir: str) -> None:
        """Configure the library to write under ``workdir`` (on the running loop)."""

    @abc.abstractmethod
    async def finish(self) -> None:
        """Flush and shut down on the running loop; return once everything is written."""
