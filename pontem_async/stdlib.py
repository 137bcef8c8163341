"""The stdlib ``logging`` bridge: records from ``logging.getLogger(...)`` into pontem-async.

Two ways in, for the two kinds of migrating users:

- :class:`PontemHandler` sends stdlib records through a :class:`~pontem_async.Telemetry`'s
  pipeline, so they reach the same handlers (files, OTLP, RabbitMQ) as ``pa.logger`` records.
  ``Telemetry(..., stdlib_logging=True)`` (and ``pa.init(stdlib_logging=True)``) attach one to the
  root logger with :func:`install_stdlib_bridge`.
- :class:`PontemJSONFormatter` is for users who keep their own stdlib handlers: it renders a
  record as the exact JSONL line the pipeline's JSONL handlers write.

Both go through one conversion, :func:`to_log_record`, so the two outputs cannot drift apart.
The handler does only the caller-side work a ``pa.logger`` call does (message, attributes, one
immutable record); JSON encoding and I/O stay on the pipeline's consumer tasks.

Records of the ``pontem_async`` loggers are never bridged: they report pipeline failures, and
feeding a failure report back into the failing pipeline could loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pontem_async.context import get_context
from pontem_async.encoding.jsonl import encode_line, safe_str
from pontem_async.errors import QueueFullError
from pontem_async.fingerprint import exception_type_name
from pontem_async.log import exception_attributes
from pontem_async.records import Level, LogRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = [
    "PontemHandler",
    "PontemJSONFormatter",
    "install_stdlib_bridge",
    "severity_from_levelno",
    "to_log_record",
    "uninstall_stdlib_bridge",
]

# Attributes every stdlib LogRecord has (taken from a live one, so new Python versions' additions
# such as ``taskName`` are covered), plus those formatters add. The rest came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    [*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName"]
)
_MAX_REPORTED_SITES = 256
_SEVERITIES = (
    (logging.CRITICAL, int(Level.FATAL)),
    (logging.ERROR, int(Level.ERROR)),
    (logging.WARNING, int(Level.WARN)),
    (logging.INFO, int(Level.INFO)),
    (logging.DEBUG, int(Level.DEBUG)),
)


def severity_from_levelno(levelno: int) -> int:
    """OTel severity number of a stdlib level: the nearest named OTel level at or below it.

    DEBUG→5, INFO→9, WARNING→13, ERROR→17, CRITICAL→21; a custom level such as 25 maps like
    the standard level below it (INFO); anything below DEBUG (NOTSET, custom TRACE=5) is TRACE.
    """
    for stdlib_level, severity in _SEVERITIES:
        if levelno >= stdlib_level:
            return severity
    return int(Level.TRACE)


def to_log_record(
    record: logging.LogRecord,
    resource: Mapping[str, Any] | None,
    service_name: str,
    on_format_error: Callable[[logging.LogRecord], None] | None = None,
) -> LogRecord:
    """Convert a stdlib record into a pontem-async :class:`LogRecord`.

    Attribute precedence, lowest first: bound context, ``code.*``/``thread.name``, ``extra=``
    fields, then ``exception.*`` (from ``exc_info``, with the fingerprint of ``service_name``)
    and ``code.stacktrace`` (from ``stack_info``). A message that fails to format
    (``log.info("%d", "x")``) becomes ``str(msg)`` followed by the args; ``on_format_error`` is
    then called inside the ``except`` block, so it may use ``sys.exc_info()``.
    """
    try:
        body = record.getMessage()
    except Exception:
        body = safe_str(record.msg)
        if record.args:
            body = f"{body} {safe_str(record.args)}"
        if on_format_error is not None:
            on_format_error(record)
    ctx = get_context()
    attributes: dict[str, Any] = dict(ctx) if ctx else {}
    attributes["code.filepath"] = record.pathname
    attributes["code.lineno"] = record.lineno
    attributes["code.function"] = record.funcName
    attributes["thread.name"] = record.threadName
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            attributes[key] = value
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None:
        try:
            attributes.update(exception_attributes(exc, service_name))
        except Exception:  # an exception whose __str__ raises: keep at least its type
            attributes["exception.type"] = exception_type_name(exc)
    if record.stack_info:
        attributes["code.stacktrace"] = record.stack_info
    return LogRecord(
        int(record.created * 1_000_000_000),
        severity_from_levelno(record.levelno),
        body,
        attributes,
        record.name,
        resource,
    )


class PontemHandler(logging.Handler):
    """A stdlib handler that submits every record to a telemetry pipeline.

    Args:
        telemetry: where records go; None means the default instance (``pa.logger``'s).
        level: the usual stdlib handler level; the handlers' own ``level`` in pontem-async
            filters again, and records no pontem-async handler wants are dropped before any
            conversion work.

    ``emit`` never raises into the logging call: a record the pipeline refuses (overflow policy
    ``raise``) is already counted as dropped, and an unexpected error is counted and reported
    once on the ``pontem_async`` logger. A message that fails to format is still delivered with
    its raw message and args, and reported through :meth:`handleError` once per call site (which
    prints to stderr only while ``logging.raiseExceptions`` is true, as stdlib does).
    """

    def __init__(self, telemetry: Telemetry | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        if telemetry is None:
            from pontem_async.telemetry import get_default

            telemetry = get_default()
        self.telemetry = telemetry
        self._reported_sites: set[tuple[str, int]] = set()

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter then emit, without stdlib's per-handler lock: submitting is thread-safe, and
        threads logging at once should not queue up behind each other here."""
        result: object = self.filter(record)
        if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = result
        if result:
            self.emit(record)
        return bool(result)

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if name == "pontem_async" or name.startswith("pontem_async."):
            return  # pipeline failure reports: bridging them could loop
        tel = self.telemetry
        try:
            if severity_from_levelno(record.levelno) < tel._min_log_severity:
                return
            tel.submit(to_log_record(record, tel.resource, tel.service_name, self._format_error))
        except QueueFullError:
            pass  # overflow policy "raise": the drop is counted; stdlib callers expect no raise
        except Exception as exc:
            tel._internal_error("stdlib bridge", exc)

    def _format_error(self, record: logging.LogRecord) -> None:
        site = (record.pathname, record.lineno)
        if site in self._reported_sites or len(self._reported_sites) >= _MAX_REPORTED_SITES:
            return
        self._reported_sites.add(site)
        self.handleError(record)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<PontemHandler service={self.telemetry.service_name!r} level={level}>"


class PontemJSONFormatter(logging.Formatter):
    """Formats a stdlib record as one pontem-async JSONL line (without the trailing newline).

    The line is exactly what the pipeline's JSONL handlers write for the same record, so a
    service that keeps its stdlib handlers (``handler.setFormatter(PontemJSONFormatter())``)
    produces files the pontem-async tools read.

    Args:
        resource: the ``resource`` object of every line (replaces the default's entirely).
        service_name: sets ``service.name`` in the resource (over ``resource`` or the default).

    With neither, the default telemetry's resource is read at each ``format`` call, so a
    formatter configured before ``pa.init(...)`` still follows it. Exception fingerprints use
    the resulting ``service.name``, matching ``pa.logger.exception`` in that service.
    """

    def __init__(
        self, *, resource: Mapping[str, Any] | None = None, service_name: str | None = None
    ) -> None:
        super().__init__()
        self._resource: dict[str, Any] | None = None
        if resource is not None or service_name is not None:
            self._resource = dict(resource) if resource is not None else {}
            if service_name is not None:
                self._resource["service.name"] = service_name

    def format(self, record: logging.LogRecord) -> str:
        resource: Mapping[str, Any] | None = self._resource
        if resource is None:
            from pontem_async.telemetry import get_default

            resource = get_default().resource
        service = resource.get("service.name")
        log = to_log_record(record, resource, service if isinstance(service, str) else "")
        return encode_line(log)[:-1].decode("utf-8")


_bridges: dict[Telemetry, PontemHandler] = {}
_bridges_lock = threading.Lock()


def install_stdlib_bridge(telemetry: Telemetry) -> PontemHandler:
    """Attach a :class:`PontemHandler` for ``telemetry`` to the root logger; returns it.

    Idempotent: if the root logger already has a PontemHandler for this telemetry (installed here
    or by hand), that one is returned and nothing is added. Levels are left alone, so the root
    logger's level still decides what reaches the bridge: the stdlib default is WARNING, set
    ``logging.basicConfig(level=logging.INFO)`` (or ``logging.getLogger().setLevel(...)``) to
    bridge more. Loggers with ``propagate=False`` never reach the root, hence never the bridge.

    Order matters with stdlib setup: ``logging.basicConfig()`` does nothing at all (not even the
    level) once the root logger has a handler, this one included, so call it first; and
    ``basicConfig(force=True)`` or ``logging.config.dictConfig`` replace the root's handlers,
    removing this one: call this function again afterwards.
    """
    root = logging.getLogger()
    with _bridges_lock:
        for existing in root.handlers:
            if isinstance(existing, PontemHandler) and existing.telemetry is telemetry:
                return existing
        handler = PontemHandler(telemetry)
        _bridges[telemetry] = handler
        root.addHandler(handler)
    return handler


def uninstall_stdlib_bridge(telemetry: Telemetry) -> None:
    """Detach the handler :func:`install_stdlib_bridge` attached for ``telemetry`` (if any).

    A PontemHandler the application attached itself is left in place.
    """
    with _bridges_lock:
        handler = _bridges.pop(telemetry, None)
        if handler is not None:
            logging.getLogger().removeHandler(handler)
