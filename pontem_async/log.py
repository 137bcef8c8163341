"""The structured logger: ``log.info("model loaded", model="v3")``.

A log call does the least it can on the caller's thread: drop it early when no handler wants the
severity, merge bound and context attributes, take the wall clock, build one immutable
:class:`LogRecord`, hand it to the pipeline. Formatting, JSON encoding and I/O happen on the
pipeline's consumer tasks.

Method names follow pontem and OTel (``warn``, ``fatal``); ``warning``/``critical`` are aliases
for stdlib habits. ``ainfo`` and friends (structlog's names) await room in the queue when the
overflow policy is ``block``, the only way an async caller on the event loop can be back-pressured.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pontem_async._calltree import SPAN_ID, TRACE_ID
from pontem_async._calltree import current_node as _current_node
from pontem_async._calltree import span_id_of as _span_id_of
from pontem_async.context import _context
from pontem_async.errors import QueueFullError
from pontem_async.fingerprint import exception_fingerprint, exception_type_name, format_stacktrace
from pontem_async.records import Level, LogRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = ["Logger"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_time_ns = time.time_ns
_new_record = tuple.__new__


class Logger:
    """A named logger bound to a :class:`~pontem_async.Telemetry`, with optional bound attributes.

    Get one with ``pa.get_logger(name)`` (or ``telemetry.get_logger(name)``); ``bind()`` returns
    a new logger that adds its attributes to every record. Attribute precedence, lowest first:
    context (``pa.bind_context``), bound (``bind``), the call's own keyword arguments.
    """

    __slots__ = ("_bound", "_telemetry", "name")

    TRACE = Level.TRACE
    DEBUG = Level.DEBUG
    INFO = Level.INFO
    WARN = Level.WARN
    ERROR = Level.ERROR
    FATAL = Level.FATAL

    def __init__(
        self, telemetry: Telemetry, name: str = "", bound: Mapping[str, Any] = _EMPTY
    ) -> None:
        self._telemetry = telemetry
        self.name = name
        self._bound = bound

    def bind(self, **attributes: Any) -> Logger:
        """A logger that adds ``attributes`` to every record (this one is unchanged)."""
        return Logger(self._telemetry, self.name, MappingProxyType({**self._bound, **attributes}))

    @property
    def bound(self) -> Mapping[str, Any]:
        """Attributes this logger adds to every record."""
        return self._bound

    def is_enabled_for(self, level: Level | int) -> bool:
        """Whether any handler would take a log of ``level`` (skip costly attribute building)."""
        return int(level) >= self._telemetry._min_log_severity

    def _record(self, severity: int, msg: str, attributes: dict[str, Any]) -> LogRecord:
        ctx = _context.get()
        if ctx or self._bound:
            attributes = {**ctx, **self._bound, **attributes}
        node = _current_node()
        return LogRecord(
            _time_ns(),
            severity,
            msg,
            attributes,
            self.name,
            self._telemetry.resource,
            None if node is None else node[TRACE_ID],
            None if node is None else node[SPAN_ID] or _span_id_of(node),
        )

    def log(self, level: Level | int, msg: str, /, **attributes: Any) -> None:
        """Log ``msg`` at ``level`` (an OTel severity number or :class:`Level`)."""
        tel = self._telemetry
        if level < tel._min_log_severity:
            return
        try:
            tel._submit(self._record(int(level), msg, attributes))
        except QueueFullError:
            raise
        except Exception as exc:  # telemetry never breaks the application
            tel._internal_error("log", exc)

    # The level methods are the hot path, so each is a closure made by _level_method (one frame,
    # no **kwargs re-packing); the stubs below give type checkers their real signatures.
    if TYPE_CHECKING:

        def trace(self, msg: str, /, **attributes: Any) -> None: ...
        def debug(self, msg: str, /, **attributes: Any) -> None: ...
        def info(self, msg: str, /, **attributes: Any) -> None: ...
        def warn(self, msg: str, /, **attributes: Any) -> None: ...
        def warning(self, msg: str, /, **attributes: Any) -> None: ...
        def error(self, msg: str, /, **attributes: Any) -> None: ...
        def fatal(self, msg: str, /, **attributes: Any) -> None: ...
        def critical(self, msg: str, /, **attributes: Any) -> None: ...

    def exception(
        self,
        msg: str,
        /,
        exc: BaseException | None = None,
        *,
        level: Level | int = Level.ERROR,
        **attributes: Any,
    ) -> None:
        """Log ``msg`` with the exception being handled (or ``exc``): its type, message, stack
        trace and a stable fingerprint, as OTel's ``exception.*`` attributes.

        Called outside an ``except`` block with no ``exc``, it logs ``msg`` without them.
        """
        if level < self._telemetry._min_log_severity:
            return
        if exc is None:
            exc = sys.exc_info()[1]
        if exc is not None:
            try:
                attributes.update(exception_attributes(exc, self._telemetry.service_name))
            except Exception as err:  # a broken __str__ must not break the caller
                self._telemetry._internal_error("exception", err)
        self.log(level, msg, **attributes)

    # async variants: wait for room when overflow="block"

    async def alog(self, level: Level | int, msg: str, /, **attributes: Any) -> None:
        """Like :meth:`log`; with ``overflow='block'`` it awaits room instead of dropping."""
        tel = self._telemetry
        if level < tel._min_log_severity:
            return
        try:
            await tel._asubmit(self._record(int(level), msg, attributes))
        except QueueFullError:
            raise
        except Exception as exc:
            tel._internal_error("log", exc)

    async def atrace(self, msg: str, /, **attributes: Any) -> None:
        await self.alog(1, msg, **attributes)

    async def adebug(self, msg: str, /, **attributes: Any) -> None:
        await self.alog(5, msg, **attributes)

    async def ainfo(self, msg: str, /, **attributes: Any) -> None:
        await self.alog(9, msg, **attributes)

    async def awarn(self, msg: str, /, **attributes: Any) -> None:
        await self.alog(13, msg, **attributes)

    async def aerror(self, msg: str, /, **attributes: Any) -> None:
        await self.alog(17, msg, **attributes)

    async def afatal(self, msg: str, /, **attributes: Any) -> None:
        await self.alog(21, msg, **attributes)

    def __repr__(self) -> str:
        return f"<Logger name={self.name!r} bound={sorted(self._bound)}>"


def _level_method(severity: int, name: str) -> Callable[..., None]:
    """Build the method logging at ``severity``: everything inline, one Python frame."""

    def method(self: Logger, msg: str, /, **attributes: Any) -> None:
        tel = self._telemetry
        if severity < tel._min_log_severity:
            return
        try:
            ctx = _context.get()
            if ctx or self._bound:
                attributes = {**ctx, **self._bound, **attributes}
            node = _current_node()  # inside a profiled call: correlate with its span
            # tuple.__new__ directly: LogRecord's field order, minus one Python frame
            tel._submit(
                _new_record(
                    LogRecord,
                    (
                        _time_ns(),
                        severity,
                        msg,
                        attributes,
                        self.name,
                        tel.resource,
                        None if node is None else node[TRACE_ID],
                        None if node is None else node[SPAN_ID] or _span_id_of(node),
                    ),
                )
            )
        except QueueFullError:
            raise
        except Exception as exc:  # telemetry never breaks the application
            tel._internal_error("log", exc)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Log ``msg`` at severity {severity} with ``attributes``."
    return method


if not TYPE_CHECKING:
    for _name, _severity in (
        ("trace", 1),
        ("debug", 5),
        ("info", 9),
        ("warn", 13),
        ("warning", 13),
        ("error", 17),
        ("fatal", 21),
        ("critical", 21),
    ):
        setattr(Logger, _name, _level_method(_severity, _name))


def exception_attributes(exc: BaseException, service: str) -> dict[str, Any]:
    """OTel ``exception.*`` attributes of ``exc`` plus its fingerprint."""
    return {
        "exception.type": exception_type_name(exc),
        "exception.message": str(exc),
        "exception.stacktrace": format_stacktrace(exc),
        "exception.fingerprint": exception_fingerprint(exc, service),
    }
