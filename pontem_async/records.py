"""Records: the immutable values that flow from application code to handlers.

Every signal the application produces (a log line, a metric snapshot, a profiled call tree, an
event) becomes one record. Records are built on the caller's thread, so building one must cost
almost nothing: they are tuple subclasses with ``__slots__ = ()`` — immutable for real (no
``__setattr__`` tricks), no per-instance ``__dict__``, created with a single ``tuple.__new__``
(about 0.3 µs; a frozen dataclass costs three times that). Attributes are kept by reference;
serialization happens later, on the pipeline's consumer task.

Hierarchy::

    Record                 common base: ``kind`` and ``timestamp`` (ns since the Unix epoch)
     └── LogRecord         OTel log data model: severity, body, attributes, scope, trace ids
     (MetricRecord, ProfileRecord, EventRecord extend Record in their own modules)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any, ClassVar, cast

__all__ = ["Level", "LogRecord", "Record", "Resource"]

Resource = Mapping[str, Any]
"""OTel resource attributes (``service.name``, ``service.version``, ...), shared by reference."""


class Level(IntEnum):
    """OTel severity numbers, the same values pontem and the OTel log data model use."""

    TRACE = 1
    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21

    @classmethod
    def parse(cls, value: object, *, what: str = "level") -> Level:
        """Accept a Level, an OTel severity number (1-24) or a name, stdlib names included.

        ``"warning"`` means WARN and ``"critical"`` FATAL, so stdlib users can keep their words.
        Numbers between the named ones round down to the named level of their range (OTel's
        SeverityNumber 10-12 are all INFO variants).

        Raises:
            ValueError: naming ``what`` when the value is not a level.
        """
        if isinstance(value, Level):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if 1 <= value <= 24:
                return max(lvl for lvl in cls if lvl <= value)
            raise ValueError(f"{what}: expected a severity number from 1 to 24, got {value}")
        if isinstance(value, str):
            name = value.strip().upper()
            name = _LEVEL_ALIASES.get(name, name)
            if name in cls.__members__:
                return cls[name]
        names = ", ".join(lvl.name.lower() for lvl in cls)
        raise ValueError(f"{what}: expected one of {names} or a number 1-24, got {value!r}")


_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL", "ERR": "ERROR"}
_LEVEL_NAMES = {int(lvl): lvl.name for lvl in Level}


def severity_text(severity: int) -> str:
    """The OTel severity text for a number (``TRACE`` ... ``FATAL``)."""
    name = _LEVEL_NAMES.get(severity)
    return name if name is not None else Level.parse(severity).name


class Record(tuple[Any, ...]):
    """Common base of every record kind.

    Subclasses set ``kind`` (the ``kind`` field of the JSONL line and the routing key handlers
    select on) and store the timestamp, in nanoseconds since the Unix epoch, at index 0.
    """

    __slots__ = ()
    kind: ClassVar[str] = "record"

    @property
    def timestamp(self) -> int:
        """Wall-clock time of the record in nanoseconds since the Unix epoch."""
        return cast(int, self[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}{tuple.__repr__(self)}"


class LogRecord(Record):
    """One log line in the OTel log data model.

    Fields: ``timestamp`` (ns), ``severity`` (OTel number), ``body``, ``attributes``,
    ``logger`` (the instrumentation scope name), ``resource``, ``trace_id`` / ``span_id``
    (lowercase hex, or None outside a trace).
    """

    __slots__ = ()
    kind: ClassVar[str] = "log"

    def __new__(
        cls,
        timestamp: int,
        severity: int,
        body: str,
        attributes: Mapping[str, Any],
        logger: str = "",
        resource: Resource | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> LogRecord:
        return tuple.__new__(
            cls, (timestamp, severity, body, attributes, logger, resource, trace_id, span_id)
        )

    @property
    def severity(self) -> int:
        """OTel severity number (see :class:`Level`)."""
        return cast(int, self[1])

    @property
    def severity_text(self) -> str:
        """OTel severity text derived from the number: ``INFO``, ``WARN``, ..."""
        return severity_text(self.severity)

    @property
    def body(self) -> str:
        return cast(str, self[2])

    @property
    def attributes(self) -> Mapping[str, Any]:
        return cast("Mapping[str, Any]", self[3])

    @property
    def logger(self) -> str:
        """Name of the logger (OTel instrumentation scope) that made the record."""
        return cast(str, self[4])

    @property
    def resource(self) -> Resource | None:
        return cast("Resource | None", self[5])

    @property
    def trace_id(self) -> str | None:
        return cast("str | None", self[6])

    @property
    def span_id(self) -> str | None:
        return cast("str | None", self[7])
