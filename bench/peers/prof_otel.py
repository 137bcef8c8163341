"""OpenTelemetry tracing: one span per profiled call, the SDK's batch processor, no export.

``tracer.start_as_current_span(name)`` used as a decorator (the API's
``_AgnosticContextManager`` wraps coroutine functions with an ``async`` wrapper so the span
ends when the coroutine does, and re-creates the context manager per call). ``TracerProvider``
with its defaults (``ParentBased(ALWAYS_ON)`` sampler, random ids, a resource) and a
``BatchSpanProcessor`` with its defaults (2,048-span queue that drops when full, batches of
512, a worker thread woken every 5 s or when 512 spans wait) feeding a ``SpanExporter`` whose
``export`` returns ``SUCCESS`` at once. Every call ends a ``ReadableSpan`` that goes through
the processor's queue, as in production; only the exporter's I/O is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from peers._prof_base import ProfilerPeer

_F = TypeVar("_F", bound=Callable[..., Any])


class OtelTracer(ProfilerPeer):
    label = "opentelemetry-sdk"
    packages = ("opentelemetry-sdk", "opentelemetry-api")
    config = (
        "TracerProvider(resource=service.name) + BatchSpanProcessor(defaults) + "
        "<SpanExporter whose export() returns SUCCESS>; @tracer.start_as_current_span(qualname)"
    )

    def setup(self) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class NullExporter(SpanExporter):
            def __init__(self) -> None:
                self.spans = 0

            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                self.spans += len(spans)
                return SpanExportResult.SUCCESS

        self._exporter = NullExporter()
        self._provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        self._provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self._tracer = self._provider.get_tracer("bench")

    def decorate(self, fn: _F) -> _F:
        return self._tracer.start_as_current_span(fn.__qualname__)(fn)

    def finish(self) -> None:
        self._provider.force_flush()
        self._provider.shutdown()

    def details(self) -> dict[str, Any]:
        return {"exported_spans": self._exporter.spans}
