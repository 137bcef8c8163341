"""Telemetry: one configured instance of everything — resource, pipeline, loggers, metrics.

The module keeps a default instance, so ``pa.logger`` works anywhere. Until ``pa.init`` (or
``pa.dict_config``) configures it, the default behaves like stdlib's "last resort": warnings and
worse go to stderr in the console format, and nothing is written to disk. ``pa.init`` reconfigures
that same object in place, so loggers created at import time follow the new configuration, and
metric objects keep working: the metrics registry is the same object for the instance's whole
life, only its caps follow the new ``metrics`` settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pontem_async import _lifecycle, settings
from pontem_async._metric_drops import DropCount
from pontem_async._metric_export import MetricExporter, check_settings, pipeline_drops
from pontem_async._registry import LABEL_SETS_LIMIT, NAME_LIMIT, MetricsRegistry
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import Handler
from pontem_async.log import Logger
from pontem_async.pipeline import Pipeline, PipelineOptions, ShutdownReport
from pontem_async.records import Record

if TYPE_CHECKING:
    # not at run time: _config_schema imports this module
    from pontem_async._config_schema import MetricsSettings, ProfilerSettings
    from pontem_async.events import EventStore

__all__ = ["Telemetry", "default_handlers", "get_default", "get_logger", "init"]

_internal = logging.getLogger("pontem_async")
EMIT_TARGETS = ("file", "stdout")
"""Values of ``emit_target`` / ``PONTEM_EMIT_TARGET``."""


def default_handlers(
    emit_dir: str | os.PathLike[str] | None = None, emit_target: str | None = None
) -> list[Handler]:
    """The embedded default: console (warn and worse) + rotating JSONL files, no server needed.

    ``emit_target`` (argument > ``PONTEM_EMIT_TARGET`` > ``file``): ``file`` writes
    ``<emit_dir>/records.jsonl`` (argument > ``PONTEM_EMIT_DIR`` > ``./telemetry``); ``stdout``
    writes JSONL to standard output instead.
    """
    from pontem_async.handlers.file import RotatingFileHandler
    from pontem_async.handlers.stream import StreamHandler

    target = settings.resolve(
        emit_target, settings.PONTEM_EMIT_TARGET, settings.UNSET, settings.DEFAULT_EMIT_TARGET
    )
    if target not in EMIT_TARGETS:
        choices = ", ".join(EMIT_TARGETS)
        raise ConfigError("emit_target", f"expected one of {choices}, got {target!r}")
    if target == "stdout":
        return [StreamHandler(stream=sys.stdout, format="json", name="stdout")]
    directory = settings.resolve(
        emit_dir, settings.PONTEM_EMIT_DIR, settings.UNSET, settings.DEFAULT_EMIT_DIR
    )
    return [
        StreamHandler(
            stream=sys.stderr, format="console", level="warn", name="console", kinds=["log"]
        ),
        RotatingFileHandler(os.path.join(os.fspath(directory), "records.jsonl"), name="file"),
    ]


def _last_resort() -> list[Handler]:
    from pontem_async.handlers.stream import StreamHandler

    return [
        StreamHandler(
            stream=sys.stderr, format="console", level="warn", name="last_resort", kinds=["log"]
        )
    ]


class Telemetry:
    """Owns the resource, the pipeline and its handlers; hands out loggers.

    Args:
        service_name: the ``service.name`` resource attribute (argument >
            ``PONTEM_SERVICE_NAME`` > ``unknown_service``).
        service_version: ``service.version`` (argument > ``PONTEM_SERVICE_VERSION``).
        resource: more resource attributes (``deployment.environment``, ...).
        handlers: where records go; ``None`` means the embedded default (see
            :func:`default_handlers`), ``[]`` means nowhere.
        pipeline: queue and batching options; keyword arguments named like its fields
            (``queue_size=...``, ``overflow=...``) are accepted too.
        install_signal_handlers: deliver queued records on SIGTERM (when SIGTERM still has its
            default action); False leaves signal handling entirely to the application.
        stdlib_logging: route stdlib ``logging`` records into this pipeline.
        metrics: export interval and cardinality caps of :attr:`metrics` (the ``metrics``
            configuration section); default ``MetricsSettings()``.
        profiler: the ``profiler`` section, kept as :attr:`profiler_settings` for the profiler;
            default ``ProfilerSettings()``.

    Attributes:
        metrics: the :class:`~pontem_async.metrics.MetricsRegistry`; exported every
            ``metrics.export_interval`` seconds while the pipeline runs, and at shutdown.
    """

    def __init__(
        self,
        service_name: str | None = None,
        *,
        service_version: str | None = None,
        resource: Mapping[str, Any] | None = None,
        handlers: Sequence[Handler] | None = None,
        pipeline: PipelineOptions | None = None,
        install_signal_handlers: bool = True,
        stdlib_logging: bool = False,
        metrics: MetricsSettings | None = None,
        profiler: ProfilerSettings | None = None,
        **pipeline_options: Any,
    ) -> None:
        self._lock = threading.RLock()
        self._internal_errors: dict[str, int] = {}
        self._loggers: dict[str, Logger] = {}
        self._generation = 0
        """Bumped whenever something a compiled profiler state holds may have changed (a new
        pipeline, a started one, new settings, a removed metric): the profiler compares it
        once per root call instead of checking each thing."""
        self.metrics = MetricsRegistry()
        self.metrics.drop_source = self._pipeline_drops
        self.metrics.on_remove = self._changed
        self._exporter: MetricExporter | None = None
        self._events: EventStore | None = None
        self._setup(
            service_name,
            service_version,
            resource,
            handlers,
            pipeline,
            install_signal_handlers,
            stdlib_logging,
            pipeline_options,
            metrics,
            profiler,
        )

    def _setup(
        self,
        service_name: str | None,
        service_version: str | None,
        resource: Mapping[str, Any] | None,
        handlers: Sequence[Handler] | None,
        pipeline: PipelineOptions | None,
        install_signal_handlers: bool,
        stdlib_logging: bool,
        pipeline_options: Mapping[str, Any],
        metrics: MetricsSettings | None = None,
        profiler: ProfilerSettings | None = None,
    ) -> None:
        metrics_settings, profiler_settings = check_settings(metrics, profiler)
        if pipeline is not None and pipeline_options:
            raise TypeError("pass either pipeline=PipelineOptions(...) or its fields, not both")
        unknown = sorted(set(pipeline_options) - set(PipelineOptions.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        options = pipeline if pipeline is not None else PipelineOptions(**pipeline_options)
        name = settings.resolve(
            service_name, settings.PONTEM_SERVICE_NAME, settings.UNSET, "unknown_service"
        )
        if not isinstance(name, str) or not name:
            raise ConfigError("service.name", f"expected a non-empty string, got {name!r}")
        version = settings.resolve(
            service_version, settings.PONTEM_SERVICE_VERSION, settings.UNSET, None
        )
        res: dict[str, Any] = {"service.name": name}
        if version is not None:
            res["service.version"] = str(version)
        if resource:
            res.update(resource)
        chosen = list(handlers) if handlers is not None else default_handlers()
        for index, handler in enumerate(chosen):
            if not isinstance(handler, Handler):
                raise TypeError(
                    f"handlers[{index}]: expected a pontem_async Handler, "
                    f"got {type(handler).__name__}"
                )
        self.service_name: str = name
        self.resource: Mapping[str, Any] = res
        if self._events is not None:  # an active run stays stamped on the new resource
            self._events.restamp()
        self.install_signal_handlers = install_signal_handlers
        self.stdlib_logging = stdlib_logging
        self._pipeline = Pipeline(chosen, options)
        self._pipeline_created_ns = time.time_ns()
        self._min_log_severity: int = self._pipeline.min_log_severity
        self._submit = self._start_then_submit
        self._generation += 1
        self._metrics_settings = metrics_settings
        self._profiler_settings = profiler_settings
        if metrics_settings is None:  # MetricsSettings() (its defaults are the registry's)
            self.metrics.configure(name_limit=NAME_LIMIT, label_sets_limit=LABEL_SETS_LIMIT)
        else:
            self.metrics.configure(
                name_limit=metrics_settings.name_limit,
                label_sets_limit=metrics_settings.label_sets_limit,
            )

    # ------------------------------------------------------------------ configuration

    @property
    def metrics_settings(self) -> MetricsSettings:
        """The ``metrics`` settings in force (export interval, caps)."""
        if self._metrics_settings is None:
            from pontem_async._config_schema import MetricsSettings

            self._metrics_settings = MetricsSettings()
        return self._metrics_settings

    @property
    def profiler_settings(self) -> ProfilerSettings:
        """The ``profiler`` settings in force, for the profiler."""
        if self._profiler_settings is None:
            from pontem_async._config_schema import ProfilerSettings

            self._profiler_settings = ProfilerSettings()
        return self._profiler_settings

    @property
    def events(self) -> EventStore:
        """Events, their current view and the active run (``pa.event``, ``pa.start_run``...)."""
        if self._events is None:
            with self._lock:
                if self._events is None:
                    from pontem_async.events import EventStore

                    self._events = EventStore(self)
        return self._events

    @property
    def handlers(self) -> tuple[Handler, ...]:
        return tuple(lane.handler for lane in self._pipeline.lanes)

    @property
    def options(self) -> PipelineOptions:
        return self._pipeline.options

    @property
    def running(self) -> bool:
        return self._pipeline.running

    def configure(
        self,
        service_name: str | None = None,
        *,
        service_version: str | None = None,
        resource: Mapping[str, Any] | None = None,
        handlers: Sequence[Handler] | None = None,
        pipeline: PipelineOptions | None = None,
        install_signal_handlers: bool = True,
        stdlib_logging: bool = False,
        start: bool = True,
        metrics: MetricsSettings | None = None,
        profiler: ProfilerSettings | None = None,
        **pipeline_options: Any,
    ) -> Telemetry:
        """Replace this instance's configuration in place (loggers and metrics keep working).

        The previous pipeline is shut down: the metrics' latest values and the records it still
        held are delivered first. The metrics registry stays the same object; its caps follow
        ``metrics`` (omitted: the defaults), and nothing already registered is evicted.
        """
        with self._lock:
            old, old_exporter = self._pipeline, self._exporter
            self._setup(
                service_name,
                service_version,
                resource,
                handlers,
                pipeline,
                install_signal_handlers,
                stdlib_logging,
                pipeline_options,
                metrics,
                profiler,
            )
            self._exporter = None
            if old_exporter is not None:
                old_exporter.finish()
            self._retire(old)
            if not self.stdlib_logging:
                from pontem_async.stdlib import uninstall_stdlib_bridge

                uninstall_stdlib_bridge(self)
            if start:
                self.start()
        return self

    def _retire(self, old: Pipeline) -> None:
        if not old.running:
            old.shutdown_sync(0.1)
            return
        if old.on_pipeline_loop():
            task = asyncio.get_running_loop().create_task(old.shutdown())
            _lifecycle._pending.add(task)
            task.add_done_callback(_lifecycle._pending.discard)
        else:
            old.shutdown_sync()

    def start(self) -> Telemetry:
        """Start the pipeline (on the running loop, or a private loop in a daemon thread)."""
        with self._lock:
            pipeline = self._pipeline
            pipeline.start()
            self._submit = pipeline.submit
            self._generation += 1
            if self._exporter is None and pipeline.running:
                self._exporter = MetricExporter(
                    self.metrics,
                    pipeline,
                    self.metrics_settings.export_interval,
                    self.resource,
                    self._internal_error,
                )
                self._exporter.start()
        _lifecycle.register(self, signals=self.install_signal_handlers)
        if self.stdlib_logging:
            from pontem_async.stdlib import install_stdlib_bridge

            install_stdlib_bridge(self)
        return self

    # ------------------------------------------------------------------ records

    def _changed(self) -> None:
        self._generation += 1

    def _start_then_submit(self, record: Record) -> None:
        self.start()
        self._pipeline.submit(record)

    async def _asubmit(self, record: Record) -> None:
        if not self._pipeline.running:
            self.start()
        await self._pipeline.asubmit(record)

    def submit(self, record: Record) -> None:
        """Hand any record to the pipeline (what loggers, metrics and the profiler do)."""
        self._submit(record)

    def get_logger(self, name: str = "") -> Logger:
        """The logger called ``name`` (the OTel instrumentation scope) of this instance."""
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers.setdefault(name, Logger(self, name))
        return logger

    @property
    def logger(self) -> Logger:
        """The root logger of this instance."""
        return self.get_logger("")

    def _internal_error(self, where: str, exc: BaseException) -> None:
        count = self._internal_errors.get(where, 0)
        self._internal_errors[where] = count + 1
        if count == 0:
            _internal.error(
                "pontem-async swallowed an error in %s so the application keeps running: %s: %s",
                where,
                type(exc).__name__,
                exc,
            )

    # ------------------------------------------------------------------ flush and shutdown

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before the call is delivered and flushed by every
        handler. Returns False if a handler failed or ``timeout`` passed first."""
        return await self._pipeline.flush(timeout)

    def flush_sync(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for synchronous programs (not from the pipeline's own loop)."""
        return self._pipeline.flush_sync(timeout)

    async def shutdown(self, timeout: float | None = None) -> ShutdownReport:
        """Deliver what is queued (within ``timeout`` seconds, default
        ``pipeline.shutdown_timeout``), close every handler, and report what was not delivered.
        """
        exporter = self._exporter
        if exporter is not None and self._pipeline.running:
            await exporter.afinish()  # the latest values go out before the pipeline drains
        report = await self._pipeline.shutdown(timeout)
        self._after_shutdown()
        return report

    def shutdown_sync(self, timeout: float | None = None) -> ShutdownReport:
        """:meth:`shutdown` for synchronous programs."""
        self._final_export()
        report = self._pipeline.shutdown_sync(timeout)
        self._after_shutdown()
        return report

    def _final_export(self) -> None:
        exporter = self._exporter
        if exporter is not None and self._pipeline.running:
            exporter.finish()

    def export_metrics(self) -> int:
        """Export the metrics now, besides the periodic export; returns how many records were
        submitted (0 while the pipeline is not running)."""
        exporter = self._exporter
        return exporter.export() if exporter is not None and self._pipeline.running else 0

    def _pipeline_drops(self) -> list[DropCount]:
        """The pipeline's drop counters, for ``pontem.dropped_records`` (cumulative since this
        pipeline was built; a reconfiguration starts them again with a new start time)."""
        return pipeline_drops(self._pipeline, self._pipeline_created_ns)

    def _after_shutdown(self) -> None:
        from pontem_async.stdlib import uninstall_stdlib_bridge

        _lifecycle.unregister(self)
        uninstall_stdlib_bridge(self)  # a no-op when no bridge was installed

    def _shutdown_at_exit(self) -> None:
        pipeline = self._pipeline
        if not pipeline.running:
            return
        try:
            self._final_export()
            pipeline.shutdown_sync()
        except Exception as exc:  # at exit, report and move on
            _internal.error("pontem-async exit-time shutdown failed: %s", exc)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per handler: ``queued``, ``delivered``, ``filtered``, ``failed_batches`` and
        ``dropped`` (reason -> count). Every record not delivered is counted in ``dropped``."""
        return self._pipeline.stats()

    async def __aenter__(self) -> Telemetry:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        names = [lane.name for lane in self._pipeline.lanes]
        return f"<Telemetry service={self.service_name!r} handlers={names}>"


_default = Telemetry(handlers=_last_resort(), install_signal_handlers=False)


def get_default() -> Telemetry:
    """The module-level default instance behind ``pa.logger`` and friends."""
    return _default


def get_logger(name: str = "") -> Logger:
    """A logger of the default instance."""
    return _default.get_logger(name)


def init(
    service_name: str | None = None,
    handlers: Sequence[Handler] | None = None,
    *,
    service_version: str | None = None,
    resource: Mapping[str, Any] | None = None,
    stdlib_logging: bool = False,
    install_signal_handlers: bool = True,
    emit_dir: str | os.PathLike[str] | None = None,
    emit_target: str | None = None,
    metrics: MetricsSettings | None = None,
    profiler: ProfilerSettings | None = None,
    **pipeline_options: Any,
) -> Telemetry:
    """Configure and start the default instance; returns it.

    With no ``handlers``, the embedded default is used: warnings to stderr and every record as
    JSONL under ``emit_dir`` (``./telemetry``), or JSONL on stdout with ``emit_target="stdout"``.
    """
    if handlers is None:
        handlers = default_handlers(emit_dir, emit_target)
    return _default.configure(
        service_name,
        service_version=service_version,
        resource=resource,
        handlers=handlers,
        install_signal_handlers=install_signal_handlers,
        stdlib_logging=stdlib_logging,
        metrics=metrics,
        profiler=profiler,
        **pipeline_options,
    )
