"""Durations of profiled calls on their way into the ``time_profiler`` histogram.

A profiled call that returns does not update the histogram itself: it appends its method path
and duration to a deque (about a tenth of the cost: no bucket search, no metric lock), and the
histogram catches up in batches, one lock per batch:

- before every read of the histogram (snapshot, periodic export, ``exposition()``, the final
  export at shutdown: ``Metric._before_read``), so what is read is never behind the calls that
  returned before it;
- on the pipeline's event loop, once :data:`DRAIN_AT` durations are waiting: like the records'
  consumers, outside the profiled calls (between requests, on a busy loop; on its own thread in
  a synchronous program);
- by the caller itself once :data:`CAP` durations are waiting (a loop that no longer runs):
  the deque stays bounded whatever happens.

Calls that raised, or run with hooks, update the histogram directly (they are the rare path).
An entry is ``(path, duration_ns)`` for a child, or the root's frozen node (path at index 0,
duration at index 4): the root has that tuple anyway, so it costs nothing more.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pontem_async.profiler import Profiler

__all__ = ["CAP", "DRAIN_AT", "DrainAll", "PendingTimes", "attach"]

DRAIN_AT = 256
"""Waiting durations that make the pipeline's loop count them."""
CAP = 65_536
"""Waiting durations that make the caller count them at once."""
_get_ident = threading.get_ident


class PendingTimes:
    """The deque of one profiler, and its draining; see the module docstring."""

    __slots__ = ("entries", "profiler", "scheduled")

    def __init__(self, profiler: Profiler) -> None:
        self.profiler = profiler
        self.entries: deque[tuple[Any, ...]] = deque()
        self.scheduled = False

    def drain(self) -> None:
        """Count every waiting duration in the current ``time_profiler`` histogram (or forget
        them when time profiling was turned off meanwhile). Safe from any thread, and from
        several at once: each entry is taken by one ``popleft``."""
        popleft = self.entries.popleft
        batch: list[tuple[Any, ...]] = []
        take = batch.append
        try:
            for _ in range(len(self.entries)):  # not more: producers may go on appending
                take(popleft())
        except IndexError:  # another thread drained some meanwhile
            pass
        if not batch:
            return
        state = self.profiler._state
        if state.time is None:
            return
        try:
            cells = state.time_ok
            # bucket indexes first (creating a path's series takes the metric's lock)
            updates = []
            for entry in batch:
                path = entry[0]
                ms = (entry[1] if len(entry) == 2 else entry[4]) / 1e6
                cell = cells.get(path)
                if cell is None:
                    cell = state.time_cell(path, False)
                updates.append((cell, ms))
            lock = state.time_lock
            refused = []
            with lock:
                for (bounds, counts, series), ms in updates:
                    if bounds is None:
                        refused.append((series, ms))
                        continue
                    counts[bisect_left(bounds, ms)] += 1
                    series._sum += ms
            for series, ms in refused:  # over a cap: their observe() counts the drop
                series.observe(ms)
        except Exception as exc:  # telemetry never breaks the application
            state.telemetry._internal_error("profiler", exc)

    def drain_later(self) -> None:
        """Have the pipeline's loop drain soon (once per batch), or drain now when there is no
        running loop to do it or the deque reached :data:`CAP`."""
        if len(self.entries) >= CAP:
            self.drain()
            return
        if self.scheduled:
            return
        pipeline = self.profiler.telemetry._pipeline
        loop = pipeline.loop
        if loop is None or not pipeline.running or loop.is_closed():
            self.drain()
            return
        self.scheduled = True
        try:
            if _get_ident() == pipeline._loop_thread:
                loop.call_soon(self._scheduled_drain)
            else:
                loop.call_soon_threadsafe(self._scheduled_drain)
        except RuntimeError:  # the loop closed meanwhile
            self.scheduled = False
            self.drain()

    def _scheduled_drain(self) -> None:
        self.scheduled = False
        self.drain()


class DrainAll:
    """A histogram's ``_before_read`` when profilers feed it: drains each of them (several
    :class:`Profiler` objects may share one telemetry, hence one ``time_profiler``)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: list[PendingTimes] = []

    def __call__(self) -> None:
        for pending in tuple(self.pending):
            pending.drain()


def attach(metric: Any, pending: PendingTimes) -> None:
    """Make every read of ``metric`` drain ``pending`` first."""
    hook = metric._before_read
    if not isinstance(hook, DrainAll):
        hook = DrainAll()
        metric._before_read = hook
    if pending not in hook.pending:
        hook.pending.append(pending)
