"""Exit hooks: deliver what is queued when the process ends.

- ``atexit``: a normal exit (end of script, ``sys.exit``, an unhandled ``KeyboardInterrupt``
  from SIGINT) runs the shutdown with its deadline. Daemon threads still run during atexit
  callbacks, so a private pipeline loop can still drain.
- SIGTERM: its default action kills the process without running atexit. When the pipeline owns
  the process's signal handling (the handler is still ``SIG_DFL`` and we are on the main thread;
  opt out with ``install_signal_handlers=False``), SIGTERM runs the shutdown and then re-delivers
  itself with the default action, so the exit status stays "terminated by SIGTERM".
- SIGINT keeps Python's default (``KeyboardInterrupt``): the program unwinds its ``finally``
  blocks and the atexit hook delivers the rest.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import threading
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

_live: weakref.WeakSet[Telemetry] = weakref.WeakSet()
_atexit_registered = False
_sigterm_installed = False
_lock = threading.Lock()


def _shutdown_all() -> None:
    for telemetry in list(_live):
        telemetry._shutdown_at_exit()


def register(telemetry: Telemetry, *, signals: bool) -> None:
    """Make ``telemetry`` shut down at interpreter exit (and on SIGTERM when ``signals``)."""
    global _atexit_registered
    with _lock:
        _live.add(telemetry)
        if not _atexit_registered:
            atexit.register(_shutdown_all)
            _atexit_registered = True
    if signals:
        _install_sigterm()


def unregister(telemetry: Telemetry) -> None:
    _live.discard(telemetry)


def _redeliver_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


_pending: set[asyncio.Task[Any]] = set()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    live = list(_live)
    on_this_loop = [t for t in live if loop is not None and t._pipeline.loop is loop]
    for telemetry in live:
        if telemetry not in on_this_loop:
            telemetry._shutdown_at_exit()
    if not on_this_loop or loop is None:
        _redeliver_sigterm()
        return

    async def finish() -> None:
        # The pipeline runs on this very loop: it cannot be waited for synchronously here.
        for telemetry in on_this_loop:
            await telemetry.shutdown()
        _redeliver_sigterm()

    def schedule() -> None:
        task = loop.create_task(finish())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    loop.call_soon_threadsafe(schedule)


def _install_sigterm() -> None:
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the application handles SIGTERM itself: leave it alone
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not allowed here (embedded interpreter, odd platform)
        return
    _sigterm_installed = True
