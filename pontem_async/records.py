"""Records: the immutable values that flow from application code to handlers.

Every signal the application produces (a log line, a metric snapshot, a profiled call tree, an
event) becomes one record. Records are built on the caller's thread, so building one must cost
almost nothing: they are tuple subclasses with ``__slots__ = ()`` — immutable for real (no
``__setattr__`` tricks), no per-instance ``__dict__``, created with a single ``tuple.__new__``
(about 0.3 µs; a frozen dataclass costs three times that). Attributes are kept by reference;
serialization happens later, on the pipeline's consumer task.

Hierarchy::

    Record                 common base: ``kind`` and ``timestamp`` (ns since the Unix epoch)
     ├── LogRecord         OTel log data model: severity, body, attributes, scope, trace ids
     ├── MetricRecord      one metric's snapshot: every series (label set) as a MetricPoint
     ├── ProfileRecord     one finished root call and its call tree of CallNodes
     ├── EventRecord       a named event and its payload (the "current" view's input)
     └── SeriesRecord      many points of one numeric series, as columns
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Literal, NamedTuple, cast

__all__ = [
    "CallNode",
    "EventRecord",
    "FrozenNode",
    "HistogramValue",
    "Level",
    "LogRecord",
    "MetricPoint",
    "MetricRecord",
    "MetricType",
    "ProfileRecord",
    "Record",
    "Resource",
    "SeriesRecord",
    "SummaryValue",
    "freeze_node",
    "thaw_node",
]

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


MetricType = Literal["counter", "gauge", "histogram", "summary", "info", "enum"]


@dataclass(frozen=True, slots=True)
class HistogramValue:
    """A histogram series: ``bucket_counts`` are per bucket (not cumulative), one more than
    ``bounds`` (the last bucket is ``(bounds[-1], +Inf)``), summing to ``count`` — OTLP's shape."""

    count: int
    sum: float
    bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SummaryValue:
    """A summary series: count and sum, plus ``(quantile, value)`` pairs when tracked."""

    count: int
    sum: float
    quantiles: tuple[tuple[float, float], ...] = ()


class MetricPoint(NamedTuple):
    """One series of a metric at snapshot time.

    ``value`` by metric type: counter and gauge a float; histogram a :class:`HistogramValue`;
    summary a :class:`SummaryValue`; info a mapping of info labels; enum the current state.
    ``start_time`` (ns) is when the series' cumulative count began (stable per series).
    """

    labels: Mapping[str, str]
    start_time: int
    value: float | HistogramValue | SummaryValue | Mapping[str, str] | str


class MetricRecord(Record):
    """A snapshot of one metric: all of its series as :class:`MetricPoint` s.

    Fields: ``timestamp`` (ns, when the snapshot was taken), ``name``, ``type``
    (:data:`MetricType`), ``unit`` (UCUM, e.g. ``ms``, ``By``; may be empty), ``description``,
    ``points``, ``resource``, ``states`` (the declared states of an enum, else empty).
    """

    __slots__ = ()
    kind: ClassVar[str] = "metric"

    def __new__(
        cls,
        timestamp: int,
        name: str,
        type: MetricType,
        unit: str,
        description: str,
        points: tuple[MetricPoint, ...],
        resource: Resource | None = None,
        states: tuple[str, ...] = (),
    ) -> MetricRecord:
        return tuple.__new__(
            cls, (timestamp, name, type, unit, description, points, resource, states)
        )

    @property
    def name(self) -> str:
        return cast(str, self[1])

    @property
    def type(self) -> MetricType:
        return cast(MetricType, self[2])

    @property
    def unit(self) -> str:
        return cast(str, self[3])

    @property
    def description(self) -> str:
        return cast(str, self[4])

    @property
    def points(self) -> tuple[MetricPoint, ...]:
        return cast("tuple[MetricPoint, ...]", self[5])

    @property
    def resource(self) -> Resource | None:
        return cast("Resource | None", self[6])

    @property
    def states(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", self[7])


class CallNode:
    """One profiled call in a call tree.

    Mutable only while its root runs (the profiler fills ``duration_ns``, ``error`` and
    ``children``); once the root's :class:`ProfileRecord` is submitted nothing changes it.

    Attributes:
        name: the method path, phanos' shape: ``Owner:root.child.grandchild``.
        span_id: 16 lowercase hex chars; ``parent_span_id`` is None for the root.
        start_unix_nano: wall-clock start; ``duration_ns`` comes from a monotonic clock
            (None while running; an unfinished child is closed at its root's end).
        error: None, or ``{"type", "message", "fingerprint"}`` when the call raised.
        attributes: the decorator's attributes plus ``unfinished: True`` where it applies.
        children: calls made inside this one, in start order.
    """

    __slots__ = (
        "attributes",
        "children",
        "duration_ns",
        "error",
        "name",
        "parent_span_id",
        "span_id",
        "start_perf_ns",
        "start_unix_nano",
    )

    def __init__(
        self,
        name: str,
        span_id: str,
        parent_span_id: str | None,
        start_unix_nano: int,
        start_perf_ns: int = 0,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.start_unix_nano = start_unix_nano
        self.start_perf_ns = start_perf_ns
        self.duration_ns: int | None = None
        self.error: dict[str, str] | None = None
        self.attributes: dict[str, Any] = attributes if attributes is not None else {}
        self.children: list[CallNode] = []

    def walk(self) -> Iterator[CallNode]:
        """This node and all its descendants, depth first, in start order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def __repr__(self) -> str:
        return (
            f"CallNode({self.name!r}, span_id={self.span_id!r}, "
            f"duration_ns={self.duration_ns}, children={len(self.children)})"
        )


FrozenNode = tuple[Any, ...]
"""A finished call-tree node as the profiler submits it: a plain tuple ``(name, span_id,
parent_span_id, start_unix_nano, duration_ns, error, attributes, children)``, ``children`` a
tuple of frozen nodes, ``attributes`` None when empty. Plain tuples of strings, numbers and
None are untracked by the cyclic GC at its first pass (a dict in one, even empty, prevents
that: hence None for no attributes), so trees waiting in a queue add nothing to the full
collections an application pays for (a tree of nodes is several tracked objects per call,
promoted to the oldest generation while it waits; that made the GC the largest share of
profiling a tree).
``ProfileRecord.root`` turns it back into :class:`CallNode` objects."""


def freeze_node(node: CallNode) -> FrozenNode:
    """``node`` and its subtree as a :data:`FrozenNode`."""
    children = node.children
    return (
        node.name,
        node.span_id,
        node.parent_span_id,
        node.start_unix_nano,
        node.duration_ns,
        node.error,
        node.attributes or None,  # any dict keeps a tuple tracked, even an empty one
        tuple([freeze_node(child) for child in children]) if children else (),
    )


def thaw_node(frozen: FrozenNode) -> CallNode:
    """The :class:`CallNode` tree of a :data:`FrozenNode` (new objects on every call)."""
    name, span_id, parent_span_id, start, duration, error, attributes, children = frozen
    node = CallNode(name, span_id, parent_span_id, start, 0, attributes or {})
    node.duration_ns = duration
    node.error = error
    if children:
        node.children = [thaw_node(child) for child in children]
    return node


class ProfileRecord(Record):
    """A finished root call and its whole call tree.

    Fields: ``timestamp`` (ns, the root's start), ``trace_id`` (32 lowercase hex), ``root``
    (:class:`CallNode`), ``resource``, ``unfinished`` (how many nodes were still running when
    the root ended and were closed as unfinished).

    The profiler stores the tree as a :data:`FrozenNode` (see there why); ``root`` then builds
    the :class:`CallNode` objects on each access, and ``frozen_root`` gives the tuples as they
    are (what the encoders read). A record built with a :class:`CallNode` keeps it as given.
    """

    __slots__ = ()
    kind: ClassVar[str] = "profile"

    def __new__(
        cls,
        timestamp: int,
        trace_id: str,
        root: CallNode | FrozenNode,
        resource: Resource | None = None,
        unfinished: int = 0,
    ) -> ProfileRecord:
        return tuple.__new__(cls, (timestamp, trace_id, root, resource, unfinished))

    @property
    def trace_id(self) -> str:
        return cast(str, self[1])

    @property
    def root(self) -> CallNode:
        root = self[2]
        return thaw_node(root) if root.__class__ is tuple else cast(CallNode, root)

    @property
    def frozen_root(self) -> FrozenNode:
        root = self[2]
        return root if root.__class__ is tuple else freeze_node(root)

    @property
    def resource(self) -> Resource | None:
        return cast("Resource | None", self[3])

    @property
    def unfinished(self) -> int:
        return cast(int, self[4])


class EventRecord(Record):
    """A named event (``pa.event(type, data)``): an occurrence with a payload, and the latest
    value of its ``type`` in the "current" view.

    Fields: ``timestamp`` (ns), ``type`` (the event's name), ``data`` (JSON-able mapping, by
    reference), ``meta`` (optional mapping of the emitter's own annotations), ``run_id`` (the
    active run's id, or None), ``resource``.
    """

    __slots__ = ()
    kind: ClassVar[str] = "event"

    def __new__(
        cls,
        timestamp: int,
        type: str,
        data: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        resource: Resource | None = None,
    ) -> EventRecord:
        return tuple.__new__(cls, (timestamp, type, data, meta, run_id, resource))

    @property
    def type(self) -> str:
        return cast(str, self[1])

    @property
    def data(self) -> Mapping[str, Any]:
        return cast("Mapping[str, Any]", self[2])

    @property
    def meta(self) -> Mapping[str, Any] | None:
        return cast("Mapping[str, Any] | None", self[3])

    @property
    def run_id(self) -> str | None:
        return cast("str | None", self[4])

    @property
    def resource(self) -> Resource | None:
        return cast("Resource | None", self[5])


class SeriesRecord(Record):
    """Many points of one numeric series from one call (``pa.metrics.series``), as columns.

    Fields: ``timestamp`` (ns, when the call was made), ``name``, ``values`` (a list or a NumPy
    array, carried as given: no per-element Python work on the caller), ``steps`` (same length:
    a list, a NumPy array, or a ``range``), ``timestamps`` (None, or per-point ns since the Unix
    epoch, same length), ``labels`` (str -> str), ``unit`` (UCUM, may be empty), ``resource``,
    ``scale`` (what the steps count: ``step``, ``epoch``, ``episode``...; last so that readers
    by position of the first eight fields keep working).
    """

    __slots__ = ()
    kind: ClassVar[str] = "series"

    def __new__(
        cls,
        timestamp: int,
        name: str,
        values: Any,
        steps: Any,
        timestamps: Any = None,
        labels: Mapping[str, str] | None = None,
        unit: str = "",
        resource: Resource | None = None,
        scale: str = "step",
    ) -> SeriesRecord:
        return tuple.__new__(
            cls, (timestamp, name, values, steps, timestamps, labels or {}, unit, resource, scale)
        )

    @property
    def name(self) -> str:
        return cast(str, self[1])

    @property
    def values(self) -> Any:
        return self[2]

    @property
    def steps(self) -> Any:
        return self[3]

    @property
    def timestamps(self) -> Any:
        return self[4]

    @property
    def labels(self) -> Mapping[str, str]:
        return cast("Mapping[str, str]", self[5])

    @property
    def unit(self) -> str:
        return cast(str, self[6])

    @property
    def resource(self) -> Resource | None:
        return cast("Resource | None", self[7])

    @property
    def scale(self) -> str:
        """What the steps count (``step`` unless the caller said otherwise)."""
        return cast(str, self[8])
