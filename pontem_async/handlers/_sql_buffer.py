"""The SQL handler's bounded retry buffer: rows accepted but not yet committed.

Why the handler keeps rows rather than letting a failed ``emit`` drop its batch: a database
restart (a failover, a minor-version upgrade) takes seconds, and the errors logged during those
seconds are the ones people look for afterwards. So every batch goes into this buffer first and
leaves it only when its transaction committed; while the database is away, rows wait here.

The buffer is bounded in rows. When a new batch does not fit, the *oldest* rows go (the newest
errors describe the outage best), counted as dropped with reason ``retry_buffer_full``. Rows
are taken from the front in chunks and removed only after the commit, so a write that fails or
is cancelled half-way leaves the buffer as it was (at worst a commit whose answer was lost is
written again: delivery is at-least-once).
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["RetryBuffer"]

Row = dict[str, Any]


class RetryBuffer:
    """Rows waiting for a commit, oldest first, at most ``capacity`` of them."""

    __slots__ = ("_rows", "capacity")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"buffer_size: expected a positive integer, got {capacity!r}")
        self.capacity = capacity
        self._rows: deque[Row] = deque()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rows: list[Row]) -> int:
        """Append ``rows``; returns how many of the oldest rows were dropped to make room."""
        overflow = len(self._rows) + len(rows) - self.capacity
        if overflow > 0:
            from_old = min(overflow, len(self._rows))
            for _ in range(from_old):
                self._rows.popleft()
            rows = rows[overflow - from_old :]  # a batch larger than the buffer keeps its tail
        self._rows.extend(rows)
        return max(overflow, 0)

    def peek(self, n: int) -> list[Row]:
        """The ``n`` oldest rows (fewer if the buffer holds fewer), left in place."""
        rows = self._rows
        return [rows[i] for i in range(min(n, len(rows)))]

    def remove(self, n: int) -> None:
        """Forget the ``n`` oldest rows: they were committed (or are dropped by the caller)."""
        for _ in range(min(n, len(self._rows))):
            self._rows.popleft()

    def clear(self) -> int:
        """Forget every row; returns how many there were (the caller counts them)."""
        n = len(self._rows)
        self._rows.clear()
        return n
