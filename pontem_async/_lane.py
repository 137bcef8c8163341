"""One handler's lane: its bounded queue and the consumer task that drains it into the handler.

Why not ``asyncio.Queue``: records arrive from any thread, and ``asyncio.Queue`` is not
thread-safe, so every cross-thread put would need ``call_soon_threadsafe`` (a self-pipe write and
a loop wake-up per record, several microseconds). Here the queue is a ``collections.deque``, whose
``append``/``popleft`` are atomic under the GIL, and the consumer is woken only when it is asleep
and either a first record arrived (start the ``flush_interval`` timer) or a full batch is ready.
Under load the consumer never sleeps and producers never touch the loop.

The lost-wake-up race is closed the classic way: the consumer publishes its waiter *before*
re-checking the queue; a producer appends *before* reading the waiter. Whichever runs second sees
the other's write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pontem_async._calltree import root_record_locked, tree_lock
from pontem_async.errors import QueueFullError
from pontem_async.records import Record

if TYPE_CHECKING:
    from pontem_async.handlers.base import Handler
    from pontem_async.pipeline import PipelineOptions

_internal = logging.getLogger("pontem_async")
_MAX_CAUSES_REMEMBERED = 64


class FlushMarker:
    """Placed in a queue by ``flush()``; resolved once everything before it is delivered."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def resolve(self, ok: bool) -> None:
        if not self.future.done():
            self.future.set_result(ok)


def _resolve_waiter(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _cancel_requested() -> bool:
    """Whether this task was asked to cancel and the request got lost on the way.

    CPython before 3.12 loses a cancellation in ``asyncio.wait_for`` when the awaited call
    finishes in the same loop iteration (gh-86296): ``wait_for`` returns its result and the
    task goes on, with ``cancelling()`` still counting the request. A consumer that then went
    back to sleep would wait forever, and ``asyncio.run``'s teardown with it.
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # 3.11+
    return cancelling is not None and cancelling() > 0


class Lane:
    """The queue and consumer of one handler. Created by the pipeline, not by users."""

    def __init__(
        self,
        handler: Handler,
        options: PipelineOptions,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self.on_finished = on_finished
        self.name = handler.name
        self.min_severity = int(handler.level)
        self.maxsize = options.queue_size
        self.batch_size = options.batch_size
        self.flush_interval = options.flush_interval
        self.overflow = options.overflow
        self.handler_timeout = options.handler_timeout
        self.buf: deque[Any] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self.task: asyncio.Task[None] | None = None
        # consumer sleep state (only the consumer writes these, except wake_scheduled)
        self.waiter: asyncio.Future[None] | None = None
        self.wake_at = 1
        self.wake_scheduled = False
        self.markers_pending = 0
        self.closing = False
        self.abandoned = False
        self.finished = False
        self.opened = False
        self.in_flight = 0
        # back-pressure for overflow="block"
        self.space = threading.Condition()
        self.blocked_threads = 0
        self.space_waiters: list[asyncio.Future[None]] = []
        # accounting
        self.lock = threading.Lock()
        self.delivered = 0
        self.filtered = 0
        self.failed_batches = 0
        self.failed_since_marker = False  # a batch failed since the last flush marker
        self.dropped: dict[str, int] = {}
        self.causes_seen: set[str] = set()
        self.warned: set[str] = set()
        handler._drop_sink = self.count_drop  # drops a handler counts after emit returned

    # ------------------------------------------------------------------ producer side (any thread)

    def put(self, record: Record) -> None:
        """Enqueue ``record`` following the overflow policy. The hot path: keep it short."""
        buf = self.buf
        if len(buf) >= self.maxsize and not self._make_room():
            return
        buf.append(record)
        if self.waiter is not None and not self.wake_scheduled and len(buf) >= self.wake_at:
            self.wake()

    def _make_room(self) -> bool:
        """The queue is full: apply the policy. True means "append anyway"."""
        policy = self.overflow
        if policy == "drop_oldest":
            try:
                oldest = self.buf.popleft()
            except IndexError:  # the consumer emptied it meanwhile
                return True
            if type(oldest) is FlushMarker:  # never drop a flush marker: put it back
                self.buf.appendleft(oldest)
            else:
                self.count_drop("overflow")
            return True
        if policy == "drop_newest":
            self.count_drop("overflow")
            return False
        if policy == "raise":
            self.count_drop("queue_full_raised")
            raise QueueFullError(self.name, self.maxsize)
        # block
        if self.closing:
            self.count_drop("closed")
            return False
        if threading.get_ident() == self.loop_thread:
            # Blocking here would block the consumer too: it runs on this very thread.
            self.count_drop("overflow_on_loop")
            self.warn_once(
                "block-on-loop",
                "queue of handler %r is full and overflow='block' cannot block the event loop "
                "thread; records logged synchronously from the loop are dropped (counted as "
                "'overflow_on_loop'). Use the async methods (await logger.ainfo(...)) to wait "
                "for room.",
                self.name,
            )
            return False
        with self.space:
            self.blocked_threads += 1
            try:
                while len(self.buf) >= self.maxsize and not self.closing:
                    self.space.wait(0.05)
            finally:
                self.blocked_threads -= 1
        if self.closing and len(self.buf) >= self.maxsize:
            self.count_drop("closed")
            return False
        return True

    async def aput(self, record: Record) -> None:
        """Like :meth:`put`, but an ``overflow='block'`` queue is awaited instead of dropping.

        Once room was seen, the record is appended even if producer threads refilled the queue
        in between: the bound is exceeded by at most one record per waiting producer, instead
        of dropping a record its caller waited for.
        """
        if self.overflow != "block":
            self.put(record)
            return
        while len(self.buf) >= self.maxsize and not self.closing:
            if self.loop is not None and asyncio.get_running_loop() is self.loop:
                fut = self.loop.create_future()
                self.space_waiters.append(fut)
                await fut
            else:  # a different loop: poll, rare and only while full
                await asyncio.sleep(0.001)
        if self.closing:
            self.count_drop("closed")
            return
        self.buf.append(record)
        if self.waiter is not None and len(self.buf) >= self.wake_at:
            self.wake()

    def add_marker(self) -> concurrent.futures.Future[bool]:
        marker = FlushMarker()
        with self.lock:
            self.markers_pending += 1
        self.buf.append(marker)
        self.wake()
        return marker.future

    def wake(self) -> None:
        """Wake the consumer if it is asleep; safe from any thread."""
        if self.waiter is None:
            return
        if threading.get_ident() == self.loop_thread:
            self._wake_now()
        elif not self.wake_scheduled and self.loop is not None:
            self.wake_scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._wake_now)
            except RuntimeError:  # loop closed: nothing left to wake
                self.wake_scheduled = False

    def _wake_now(self) -> None:
        self.wake_scheduled = False
        waiter = self.waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            # Woken: the consumer runs at the loop's next turn and looks at the queue then.
            # Until it does, the next puts have no one to wake (a burst on the loop's thread
            # would otherwise call wake() once per record).
            self.waiter = None

    # ------------------------------------------------------------------ accounting

    def count_drop(self, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self.lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self.warned:
            self.warned.add(key)
            _internal.warning(msg, *args)

    def queued(self) -> int:
        return sum(1 for item in list(self.buf) if type(item) is not FlushMarker)

    def undelivered(self) -> int:
        return self.queued() + self.in_flight

    def stats(self) -> dict[str, Any]:
        with self.lock:
            dropped = dict(self.dropped)
        out: dict[str, Any] = {
            "queued": self.queued(),
            "delivered": self.delivered,
            "filtered": self.filtered,
            "failed_batches": self.failed_batches,
            "dropped": dropped,
        }
        own = self.handler.stats()
        if own:
            out["handler"] = own
        return out

    # ------------------------------------------------------------------ consumer side (the loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the consumer task; must run on ``loop``'s thread."""
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.task = loop.create_task(self._run(), name=f"pontem-async:{self.name}")

    async def _run(self) -> None:
        try:
            await self._open()
            while True:
                if _cancel_requested():
                    raise asyncio.CancelledError
                if not self.buf:
                    if self.closing:
                        break
                    await self._sleep(1, None)
                    continue
                if len(self.buf) < self.batch_size and not self._urgent():
                    await self._sleep(min(self.batch_size, self.maxsize), self.flush_interval)
                await self._drain_once()
            await self._finish()
        except asyncio.CancelledError:
            if not self.abandoned:
                # The loop is being torn down (asyncio.run cancels every task at exit):
                # deliver what is queued before letting the cancellation through.
                self.closing = True
                await self._finish()
            raise
        finally:
            self.finished = True
            self._release_waiters()
            if self.on_finished is not None:
                self.on_finished()

    def _urgent(self) -> bool:
        return self.markers_pending > 0 or self.closing

    async def _sleep(self, threshold: int, timeout: float | None) -> None:
        assert self.loop is not None
        self.wake_at = threshold
        fut: asyncio.Future[None] = self.loop.create_future()
        self.waiter = fut
        if len(self.buf) >= threshold or self._urgent():  # re-check after publishing the waiter
            self.waiter = None
            return
        timer = self.loop.call_later(timeout, _resolve_waiter, fut) if timeout else None
        try:
            await fut
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    def _take(self) -> tuple[list[Record], FlushMarker | None]:
        batch: list[Record] = []
        popleft = self.buf.popleft
        locked = False  # the tree lock, taken at the batch's first live root, once for all
        try:
            for _ in range(self.batch_size):
                try:
                    item = popleft()
                except IndexError:
                    break
                cls = type(item)
                if cls is FlushMarker:
                    return batch, item
                if cls is list:  # a root handed over live (a RootNode): its record is made here
                    if not locked:
                        locked = tree_lock.acquire()
                    try:
                        item = root_record_locked(item)
                    except Exception as exc:  # never lose the consumer to one bad tree
                        self._report_failure(exc, "profile record")
                        self.count_drop("handler_error")
                        continue
                batch.append(item)
            return batch, None
        finally:
            if locked:
                tree_lock.release()

    async def _drain_once(self) -> None:
        batch, marker = self._take()
        self._release_waiters()
        if batch:
            await self._deliver(batch)
        if marker is not None:
            with self.lock:
                self.markers_pending -= 1
            flushed = await self._flush_handler()
            marker.resolve(flushed and not self.failed_since_marker)
            self.failed_since_marker = False

    def _release_waiters(self) -> None:
        if self.space_waiters:
            waiters, self.space_waiters = self.space_waiters, []
            for fut in waiters:
                _resolve_waiter(fut)
        if self.blocked_threads:
            with self.space:
                self.space.notify_all()

    async def _open(self) -> bool:
        if self.opened:
            return True
        try:
            await asyncio.wait_for(self.handler.open(), self.handler_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # isolated: the handler is retried on the next batch
            self._report_failure(exc, "open")
            return False
        self.opened = True
        return True

    async def _deliver(self, batch: Sequence[Record]) -> None:
        flt = self.handler.filter
        if flt is not None:
            try:
                kept = [record for record in batch if flt(record)]
            except Exception as exc:
                self._report_failure(exc, "filter")
                self._batch_failed("handler_error", len(batch))
                return
            self.filtered += len(batch) - len(kept)
            batch = kept
            if not batch:
                return
        if not self.opened and not await self._open():
            self._batch_failed("handler_error", len(batch))
            return
        self.in_flight = len(batch)
        try:
            await asyncio.wait_for(self.handler.emit(batch), self.handler_timeout)
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            self._batch_failed("handler_timeout", len(batch))
            self._report_failure(
                TimeoutError(f"emit took longer than {self.handler_timeout}s"), "emit"
            )
        except Exception as exc:
            self._batch_failed("handler_error", len(batch))
            self._report_failure(exc, "emit")
        else:
            self.delivered += len(batch)
        finally:
            self.in_flight = 0

    def _batch_failed(self, reason: str, n: int) -> None:
        self.failed_batches += 1
        self.failed_since_marker = True
        self.count_drop(reason, n)

    async def _flush_handler(self) -> bool:
        if not self.opened:
            return not self.buf and self.failed_batches == 0
        try:
            await asyncio.wait_for(self.handler.flush(self.handler_timeout), self.handler_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._report_failure(exc, "flush")
            return False
        return True

    async def _finish(self) -> None:
        """Deliver everything still queued, resolve markers, flush and close the handler."""
        while self.buf:
            await self._drain_once()
        await self._flush_handler()
        try:
            await asyncio.wait_for(self.handler.close(self.handler_timeout), self.handler_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._report_failure(exc, "close")

    def _report_failure(self, exc: BaseException, stage: str) -> None:
        """Log a handler failure once per cause; later ones with the same cause are only counted."""
        cause = f"{stage}:{type(exc).__name__}:{exc}"[:300]
        if cause in self.causes_seen:
            return
        if len(self.causes_seen) < _MAX_CAUSES_REMEMBERED:
            self.causes_seen.add(cause)
        _internal.error(
            "handler %r failed in %s: %s: %s (records it could not take are counted in "
            "stats()['%s']['dropped']; repeats of this cause are not logged again)",
            self.name,
            stage,
            type(exc).__name__,
            exc,
            self.name,
        )
