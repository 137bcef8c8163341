"""pontem-async's ``@profile``, default telemetry, with a handler that does nothing.

``pa.init(service_name="bench", handlers=[NullHandler()])``: the time profiler is on, as by
default. Inside a running loop (the async scenarios) the pipeline's consumer task lives on
that loop; in a synchronous program it runs on a private loop in a daemon thread. The handler's
``emit`` only counts what it is handed, so the cost measured is the decorator's, the call
tree's, the metric updates' and the hand-over to the pipeline, not serialization or I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from peers._prof_base import ProfilerPeer

_F = TypeVar("_F", bound=Callable[..., Any])


def null_handler() -> Any:
    """A pontem-async ``Handler`` whose ``emit`` counts records per kind and does nothing else."""
    from pontem_async.handlers import Handler
    from pontem_async.records import Record

    class NullHandler(Handler):
        def __init__(self) -> None:
            super().__init__(name="null")
            self.received: dict[str, int] = {}

        async def emit(self, batch: Sequence[Record]) -> None:
            received = self.received
            for record in batch:
                kind = record.kind
                received[kind] = received.get(kind, 0) + 1

    return NullHandler()


class PontemAsyncProfiler(ProfilerPeer):
    label = "pontem-async"
    packages = ("pontem-async",)
    config = (
        "pa.init(service_name='bench', handlers=[<Handler whose emit() does nothing>]) "
        "(time profiler on, as by default); @profile from pontem_async.profiler"
    )

    def setup(self) -> None:
        import pontem_async as pa
        from pontem_async.profiler import profile

        self._handler = null_handler()
        self._telemetry = pa.init(
            service_name="bench", handlers=[self._handler], install_signal_handlers=False
        )
        self._profile = profile

    def decorate(self, fn: _F) -> _F:
        return self._profile(fn)

    def finish(self) -> None:
        self._report = str(self._telemetry.shutdown_sync(timeout=60))

    async def afinish(self) -> None:
        self._report = str(await self._telemetry.shutdown(timeout=60))

    def details(self) -> dict[str, Any]:
        return {
            "stats": self._telemetry.stats(),
            "received": self._handler.received,
            "shutdown": getattr(self, "_report", None),
        }
