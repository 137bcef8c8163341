"""The OTLP handler's retry buffer: request bodies waiting for the collector, oldest first.

Every body goes through it, so a body waiting for a retry and bodies emitted later leave in the
order they came. It is bounded twice, in bodies and in bytes (of what is held: the compressed
payloads). A body that would overflow either bound evicts the oldest waiting bodies, and each
eviction is reported to the caller (who counts its records as dropped): during an outage the
buffer fills up to its bounds and then keeps the newest data, and memory stays bounded however
long the collector is away.

The body being sent is taken out (:meth:`take`) and either finished or put back at the front
(:meth:`put_back`); it still counts towards the bounds, but is never evicted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Pending", "RetryBuffer"]


@dataclass(eq=False)
class Pending:
    """One request body: where it goes, the payload as sent, and what it carries."""

    signal: str
    url: str
    payload: bytes
    records: int
    attempts: int = 0
    answered: asyncio.Future[None] | None = field(default=None, repr=False)
    """Resolved at the first outcome (sent, refused, waiting for a retry, evicted), so the
    ``emit`` that made the body can return."""

    @property
    def size(self) -> int:
        return len(self.payload)

    def settle(self) -> None:
        answered = self.answered
        if answered is not None and not answered.done():
            answered.set_result(None)


class RetryBuffer:
    """A FIFO of :class:`Pending` bodies bounded by ``max_bodies`` and ``max_bytes``."""

    def __init__(self, max_bodies: int, max_bytes: int) -> None:
        self.max_bodies = max_bodies
        self.max_bytes = max_bytes
        self._waiting: deque[Pending] = deque()
        self.in_flight: Pending | None = None
        self.bytes = 0
        self.records = 0

    def __len__(self) -> int:
        """Bodies held: waiting ones plus the one being sent."""
        return len(self._waiting) + (self.in_flight is not None)

    def __iter__(self) -> Iterator[Pending]:
        if self.in_flight is not None:
            yield self.in_flight
        yield from self._waiting

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def add(self, item: Pending) -> list[Pending]:
        """Append ``item``; return the bodies evicted (oldest first) to respect the bounds.
        The item itself is evicted last, if even the empty buffer cannot hold it."""
        self._waiting.append(item)
        self.bytes += item.size
        self.records += item.records
        evicted: list[Pending] = []
        while self._waiting and (len(self) > self.max_bodies or self.bytes > self.max_bytes):
            oldest = self._waiting.popleft()
            self.bytes -= oldest.size
            self.records -= oldest.records
            evicted.append(oldest)
        return evicted

    def take(self) -> Pending | None:
        """The oldest waiting body, now in flight (None when nothing waits)."""
        if not self._waiting:
            return None
        self.in_flight = self._waiting.popleft()
        return self.in_flight

    def finish(self, item: Pending) -> None:
        """The in-flight body got its final answer: let it go."""
        if self.in_flight is item:
            self.in_flight = None
            self.bytes -= item.size
            self.records -= item.records

    def put_back(self, item: Pending) -> None:
        """The in-flight body must be retried: it is the oldest again (the totals do not
        change: it counted while in flight)."""
        if self.in_flight is item:
            self.in_flight = None
            self._waiting.appendleft(item)

    def clear(self) -> list[Pending]:
        """Remove and return every body, the in-flight one included."""
        items = list(self)
        self._waiting.clear()
        self.in_flight = None
        self.bytes = 0
        self.records = 0
        return items
