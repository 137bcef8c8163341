"""phanos (the profiler pontem-async's ``@profile`` replaces), with a handler that does nothing.

Facts from its source (phanos 0.3.2): ``@phanos.profile`` wraps the function; every call walks
``Profiler.set_curr_node`` (a ``MethodTreeNode`` added to a module-wide ``ContextTree``, whose
context string is built by ``Context.prepend_method_class`` with ``inspect`` for children of
the tree's root), takes ``datetime.now()`` before and after, and stores a ``Record`` in the
``TimeProfiler`` histogram. When a root call ends (or 100 records are pending),
``handle_records_clear`` turns every metric's values into records and calls each handler's
``handle(records, name)``, then the node is found and deleted in the tree again. Configured as
its README's "Configuration in code" shows: ``profiler.config(job=...)`` (time profiler on,
``error_raised_label`` on, the sync extension that is also meant for async programs with sync
handlers) and ``profiler.add_handler(...)``. The handler is a ``SyncBaseHandler`` whose
``handle`` returns at once: the cost measured is phanos' own, not a logger's or a broker's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from peers._prof_base import ProfilerPeer

_F = TypeVar("_F", bound=Callable[..., Any])


class PhanosProfiler(ProfilerPeer):
    label = "phanos"
    packages = ("phanos",)
    config = (
        "phanos.profiler.config(job='bench') (time profiler on, error_raised_label on) + "
        "add_handler(<SyncBaseHandler whose handle() does nothing>); @phanos.profile"
    )

    def setup(self) -> None:
        import phanos
        from phanos.publisher import SyncBaseHandler

        class NullHandler(SyncBaseHandler):
            def handle(self, records: list[Any], profiler_name: str = "profiler") -> None:
                return None

        phanos.profiler.config(job="bench")
        phanos.profiler.add_handler(NullHandler("null"))
        self._profile = phanos.profile

    def decorate(self, fn: _F) -> _F:
        return self._profile(fn)  # type: ignore[return-value]

    def finish(self) -> None:
        import phanos

        phanos.profiler.delete_handlers()
