"""Durations of profiled calls on their way into the ``time_profiler`` histogram.

A profiled call that returns does not update the histogram itself: it appends its duration to
its method path's list (:class:`PathTimes`; no bucket search, no metric lock), and the
histogram catches up in batches, each path's durations counted in one go (bucket indexes and
sum computed in C, one lock):

- before every read of the histogram (snapshot, periodic export, ``exposition()``, the final
  export at shutdown: ``Metric._before_read``), so a read is never behind the calls that
  returned before it;
- once :data:`DRAIN_AT` durations are waiting on a path: on the pipeline's event loop, like
  the records' consumers (between tasks rather than inside one). From the loop's own thread
  that is a ``call_soon``; from another thread (a synchronous program, whose pipeline loop runs
  in a private thread, or a worker thread) a ``call_soon_threadsafe``: the loop's thread then
  counts the batch when it next holds the GIL, which in a program that waits for anything (I/O,
  a sleep, a lock) is while the caller waits, not on its time;
- by the caller, whatever its thread, once :data:`CAP` are waiting on a path (a loop that
  does not get to run), or when no pipeline loop runs: what waits stays bounded.

Calls that raised, or ran with hooks, update the histogram directly (they are the rare path).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pontem_async.profiler import Profiler

__all__ = ["CAP", "DRAIN_AT", "DrainAll", "PathTimes", "PendingTimes", "attach"]

DRAIN_AT = 256
"""Durations waiting on one path that make the profiler count its backlog."""
CAP = 8_192
"""Durations waiting on one path that make the caller count the backlog at once, even on the
pipeline's loop thread (the loop does not get to run)."""
_get_ident = threading.get_ident


class PathTimes:
    """One method path's returned calls, waiting to be counted: their durations in ns.

    A decorated function keeps one per method path it runs under (``_Site``), so a call
    appends a bare int to a list it already holds: no tuple to make, no grouping to do later.
    ``listed`` says the path is in its profiler's ``waiting`` deque.
    """

    __slots__ = ("durations", "listed", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.durations: list[int] = []
        self.listed = False

    def __repr__(self) -> str:
        return f"<PathTimes {self.path!r} waiting={len(self.durations)}>"


class PendingTimes:
    """The paths of one profiler with durations waiting, and their draining; see the module
    docstring.

    Lock-free for the calls. A call appends its duration, then, if its path is not listed,
    lists it; a drain unlists a path, then takes what its list holds (a slice copy and a slice
    delete, each atomic, so what is appended meanwhile stays for the next drain). Either the
    drain takes the duration or the call sees the path unlisted and lists it again: no
    duration is left behind on an unlisted path. Drains are serialized by a lock (two at once
    would take the same slice twice).

    The calls' side has no method here: it is six lines the wrappers
    (``_profile_decorator``) and ``State.end_root`` carry inline, a Python frame less on every
    profiled call (about 3 % of a root with three children)::

        durations = path.durations
        durations.append(duration_ns)       # first the duration,
        if not path.listed:                 # then the listing (see above)
            path.listed = True
            pending.waiting.append(path)
        if len(durations) >= pending.threshold:   # count the backlog
            pending.drain_soon(len(durations))

    ``threshold`` is :data:`DRAIN_AT`, and :data:`CAP` while a drain is scheduled: until it
    runs, the calls do not come back to :meth:`drain_soon` on every call.
    """

    __slots__ = ("lock", "profiler", "threshold", "waiting")

    def __init__(self, profiler: Profiler) -> None:
        self.profiler = profiler
        self.waiting: deque[PathTimes] = deque()
        self.lock = threading.Lock()
        self.threshold = DRAIN_AT

    def drain(self) -> None:
        """Count every waiting duration in the current ``time_profiler`` histogram (or forget
        them when time profiling was turned off meanwhile). Each path's durations are counted
        in one go (``HistogramSeries._observe_scaled``: sorted once, bucketed and summed in C)."""
        taken: list[tuple[str, list[int]]] = []
        with self.lock:
            waiting = self.waiting
            for _ in range(len(waiting)):  # not more: the calls may go on listing paths
                times = waiting.popleft()
                times.listed = False  # before the length: see the class docstring
                durations = times.durations
                count = len(durations)
                if count:
                    taken.append((times.path, durations[:count]))
                    del durations[:count]
        if not taken:
            return
        state = self.profiler._state
        if state.time is None:
            return
        try:
            for path, durations in taken:
                state.time_series(path, False)._observe_scaled(durations, 1e6)  # ns -> ms
        except Exception as exc:  # telemetry never breaks the application
            state.telemetry._internal_error("profiler", exc)

    def drain_soon(self, backlog: int) -> None:
        """Called by a call that left ``backlog`` (>= ``threshold``) durations on its path.
        Schedule a drain on the pipeline's loop (it runs between tasks, not in the middle of
        one, and off the caller's thread when the caller is another thread; until it runs the
        threshold is :data:`CAP`); past :data:`CAP`, or with no running loop, drain now.
        Never raises."""
        try:
            pipeline = self.profiler.telemetry._pipeline
            loop = pipeline.loop
            if backlog >= CAP or loop is None or not pipeline.running or loop.is_closed():
                self.drain()
                return
            self.threshold = CAP
            if _get_ident() == pipeline._loop_thread:
                loop.call_soon(self._scheduled_drain)
            else:
                loop.call_soon_threadsafe(self._scheduled_drain)
        except Exception as exc:  # telemetry never breaks the application
            self.threshold = DRAIN_AT
            self.profiler.telemetry._internal_error("profiler", exc)

    def _scheduled_drain(self) -> None:
        self.threshold = DRAIN_AT
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
