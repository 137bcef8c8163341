"""The private loop's default executor: daemon threads started up front, usable at exit.

Why not the standard ``ThreadPoolExecutor``: during interpreter shutdown, ``concurrent.futures``
flips a module-wide flag (from ``threading._shutdown``, before ``atexit`` callbacks run) after
which every ``ThreadPoolExecutor.submit`` raises "cannot schedule new futures after interpreter
shutdown"; since Python 3.12 new threads cannot even be started from ``atexit`` callbacks. File
handlers (aiofiles) and the stream handler do their blocking I/O through the loop's default
executor, so the exit-time shutdown that delivers a synchronous program's last records needs an
executor whose threads already run and which ignores that flag. This is it. It subclasses
``ThreadPoolExecutor`` only because ``loop.set_default_executor`` requires that type.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["DaemonExecutor", "block_process_signals"]

_PROCESS_SIGNALS = {signal.SIGINT, signal.SIGTERM} if hasattr(signal, "pthread_sigmask") else set()


def block_process_signals() -> None:
    """Block SIGINT/SIGTERM in the calling (background) thread.

    The kernel may deliver a process-directed signal to any thread that does not block it. If
    one of our threads takes SIGINT, Python still runs the handler in the main thread, but a main
    thread asleep in ``time.sleep`` or a blocking read is never woken, so Ctrl-C or SIGTERM
    seems ignored. Blocking them here leaves the main thread the only one to receive them.
    """
    if _PROCESS_SIGNALS:
        signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)


_T = TypeVar("_T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonExecutor(ThreadPoolExecutor):
    """A fixed pool of ``workers`` daemon threads, all started by the constructor."""

    def __init__(self, workers: int = 4, name: str = "pontem-async-io") -> None:
        super().__init__(max_workers=workers, thread_name_prefix=name)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        self._closed = False
        for worker in self._workers:
            worker.start()

    def _work(self) -> None:
        block_process_signals()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future[_T] = Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._workers:
            self._jobs.put(None)
        if wait:
            for worker in self._workers:
                if worker is not threading.current_thread():
                    worker.join(timeout=5.0)
