"""Call trees: which profiled call ran inside which, one tree per root call.

The current node lives in a ``ContextVar``, so the tree follows the application's own flow:

- a profiled call made while no node is current is a **root**: it starts a new trace;
- a call made while a node is current is that node's child. Tasks created with ``create_task``,
  ``gather`` or a ``TaskGroup`` start with a copy of their creator's context, and threads run
  through ``contextvars.copy_context().run`` (``asyncio.to_thread`` does it) see it too, so
  their calls attach to the node that spawned them; a plain thread starts empty and makes roots;
- two concurrent roots never share anything: each task sees only its own node.

When the root returns (or raises), its tree becomes one
:class:`~pontem_async.records.ProfileRecord`, frozen into plain tuples (:func:`freeze_tree`: the
GC stops tracking those, see :func:`~pontem_async.records.freeze_node`). A root that returned
with no hooks set is frozen off the application's path: the live root goes into the handlers'
queues and the consumer that takes it makes the record (:func:`root_record`); the others are
frozen by the caller (:func:`finish_root`). Either way the record shows the tree as it was at
the root's end: a child still running then (a task nobody awaited, a thread still working), or
that ended since, is frozen as *unfinished* (its duration runs to the root's end, its
attributes get ``unfinished: True``), and a call started after the root's end is not in it.
The record is a copy, so from then on nothing touches it: the late child's own end, and any
call it makes, only change the live nodes (and still feed the metrics).

Thread safety without a lock on the common path: children can be appended and closed from
other threads while the root freezes its tree. A list append is atomic and the freeze reads
each node once, so a concurrent child is either in the copy (finished, or unfinished) or not at
all. A child writes its ``error`` before its ``duration_ns``, and the freeze reads them in the
other order, so a finished node in the copy always has its error. The one step that needs the
lock is a parent's *first* child, which swaps the shared empty list for a list of its own (two
threads must not both make one); it is held for that swap only, never around user code or I/O.

Memory: a node references its children only; nothing references back (no parent pointer), so a
tree is freed by reference counting as soon as the handlers are done with its record, without
waiting for the cyclic GC; and a call allocates as few collected objects as it can (its node, a
children list only once it has a child, and for a root the record): the collector's work grows
with them; no table grows with the number of roots.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pontem_async.encoding.jsonl import safe_str
from pontem_async.fingerprint import exception_fingerprint, exception_type_name
from pontem_async.records import FrozenNode, ProfileRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = [
    "ANCHOR_TTL_NS",
    "ENDED_TREE",
    "NO_CHILDREN",
    "Node",
    "RootNode",
    "add_first_child",
    "close_child",
    "current_node",
    "current_span_ids",
    "current_var",
    "error_info",
    "finish_root",
    "freeze_tree",
    "open_child",
    "open_root",
    "owner_name",
    "root_record",
    "span_id_of",
    "tree_lock",
]

_current: ContextVar[Node | None] = ContextVar("pontem_async.profile_node", default=None)
current_var = _current
"""The ContextVar itself, for the wrappers (they set and reset it around each call)."""
current_node = _current.get
"""The node of the profiled call running in this context, or None."""

_lock = threading.Lock()
tree_lock = _lock
"""Held while a parent gets its first child (the swap of the shared empty list), while a span
id is made (:func:`span_id_of`) and while a tree freezes."""
_acquire = _lock.acquire  # called, not ``with _lock``: half the cost (no bound __enter__/__exit__)
_release = _lock.release
_new_record = tuple.__new__  # ProfileRecord's fields, minus a Python frame
_new_node = object.__new__
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns

ANCHOR_TTL_NS = 1_000_000
"""How long one reading of the wall clock anchors the roots that start after it (1 ms)."""
_anchor: tuple[int, int] = (_time_ns() - _perf_ns(), _perf_ns())
"""``(time_ns() - perf_counter_ns(), perf_counter_ns() when read)``: a root's wall start is
``anchor + its perf_counter_ns()``, so a root reads one clock, not two, and the anchor is read
again when it is over :data:`ANCHOR_TTL_NS` old. Within a millisecond the two clocks drift
apart by at most NTP's slew (0.5 us), and a step of the wall clock shows within a millisecond.
One tuple, replaced whole: threads read a consistent pair."""


def _refresh_anchor() -> int:
    """Read the wall clock again (the anchor is stale): the new anchor."""
    global _anchor
    now = _perf_ns()
    anchor = _time_ns() - now
    _anchor = (anchor, now)
    return anchor


_span_ids: list[str] = []
_trace_ids: list[str] = []
"""Random ids made in batches from 4 KiB of ``os.urandom``: popping one costs far less than
formatting ``random.getrandbits(64)`` on each call. ``list.pop`` is atomic, so two threads never
get the same id; a forked child empties both pools, so it never reuses its parent's ids. A root
takes its trace id when it starts; span ids are taken at their first use (:func:`span_id_of`),
mostly by the consumer that freezes the tree."""
_pop_span_id = _span_ids.pop
_pop_trace_id = _trace_ids.pop
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_span_ids.clear)
    os.register_at_fork(after_in_child=_trace_ids.clear)


def _refill(pool: list[str], width: int) -> None:
    """Add ids of ``width`` hex digits: ``bytes.hex`` with a separator, then ``split``, makes
    them all in C (about 50 ns an id, against 250 ns to format ``getrandbits(64)``)."""
    ids = os.urandom(4096).hex(" ", width // 2).split()
    zero = "0" * width
    if zero in ids:  # all zeros is not a valid id (W3C trace context)
        ids = [i for i in ids if i != zero]
    pool.extend(ids)


def _new_span_id() -> str:
    """The slow path of taking a span id: refill the pool first."""
    _refill(_span_ids, 16)
    return _pop_span_id()


def span_id_of(node: Node) -> str:
    """``node``'s span id, made at its first use.

    A call does not take a span id when it starts: most ids are only ever read when the tree
    is frozen, by the consumer (:func:`freeze_tree`), so the application's thread never pays
    for them. The first read that finds none (a log made inside the call, the freeze) makes
    it, under the tree lock, so a log and a freeze that race on it agree on one id; once set
    it never changes, so reading a set id needs no lock (``node.span_id or span_id_of(node)``).
    """
    _acquire()
    try:
        span_id = node.span_id
        if span_id is None:
            try:
                span_id = _pop_span_id()
            except IndexError:
                span_id = _new_span_id()
            node.span_id = span_id
    finally:
        _release()
    return span_id


class _NoChildren(list):  # type: ignore[type-arg]
    """The ``children`` of every node without any yet: one shared, empty, read-only list. Most
    nodes are leaves: no list of their own to make (caller) and free (consumer). The first
    child swaps in a real list (under the lock); any mutation raises, so nothing ever lands
    in the shared instance."""

    __slots__ = ()

    def _frozen(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a call-tree node's children are not modifiable")

    append = extend = insert = remove = pop = clear = sort = reverse = _frozen
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _frozen


NO_CHILDREN: list[Node] = _NoChildren()


class Node:
    """A profiled call while its tree is live: what the call itself must write, no more.

    The record's other fields are derived when the root freezes the tree: a node's parent
    span id is its parent's ``span_id``, its wall start is the root's ``anchor`` plus its
    ``start_perf_ns``. ``root`` is None on a root (a :class:`RootNode`), its root on any other
    node: a child started once the root has a duration (its tree is frozen) is not appended to
    the live tree, so calls made from a task that outlives its root never make a finished tree
    grow. (A root and its children form a reference cycle while the root runs; the freeze
    points them to :data:`ENDED_TREE` instead, so the nodes are freed by reference counting
    alone.)

    The profiler sets the slots on a bare ``object.__new__`` (no ``__init__`` frame on the hot
    path); ``__init__`` is for tests and tools.
    """

    __slots__ = (
        "attributes",
        "children",
        "duration_ns",
        "error",
        "name",
        "root",
        "span_id",
        "start_perf_ns",
        "trace_id",
    )

    def __init__(
        self,
        name: str,
        span_id: str | None,
        trace_id: str,
        root: RootNode | None,
        attributes: dict[str, Any],
        start_perf_ns: int,
    ) -> None:
        self.name = name
        self.span_id: str | None = span_id
        self.trace_id = trace_id
        self.root: Node | None = root
        self.attributes = attributes
        self.start_perf_ns = start_perf_ns
        self.duration_ns: int | None = None
        self.error: dict[str, str] | None = None
        self.children: list[Node] = NO_CHILDREN

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} span_id={self.span_id!r} "
            f"duration_ns={self.duration_ns} children={len(self.children)}>"
        )


class RootNode(Node):
    """A root: a node that also anchors its tree on the wall clock, and, once it returned,
    stands in the handlers' queues for its record (:func:`root_record`).

    ``anchor`` is ``time_ns() - perf_counter_ns()`` (read at most once a millisecond, see
    :data:`_anchor`): every node's wall start is one addition, consistent with the monotonic
    durations of the same tree. ``resource`` (the telemetry's resource at the root's end) and
    ``record`` (None until the first :func:`root_record`) are set when the root returns.
    """

    __slots__ = ("anchor", "record", "resource", "start_unix_nano")
    anchor: int
    start_unix_nano: int
    resource: Mapping[str, Any] | None
    record: ProfileRecord | None


ENDED_TREE = _new_node(Node)
"""What a frozen tree's nodes point to as their root: it has a duration, so a child started
under any of them is not appended (see :func:`open_child`)."""
ENDED_TREE.duration_ns = 0
ENDED_TREE.root = None


def open_root(name: str, attributes: dict[str, Any]) -> RootNode:
    """A new root node, in a new trace (128-bit trace id; its 64-bit span id is made at its
    first use, :func:`span_id_of`). Sets the slots
    itself on a bare ``object.__new__``: one Python frame less on every call
    (``test_nodes_set_every_slot`` checks roots and children)."""
    try:
        trace_id = _pop_trace_id()
    except IndexError:
        _refill(_trace_ids, 32)
        trace_id = _pop_trace_id()
    node = _new_node(RootNode)
    perf = _perf_ns()
    anchor, read_at = _anchor
    if perf - read_at > ANCHOR_TTL_NS or perf < read_at:
        anchor = _refresh_anchor()
    node.name = name
    node.span_id = None  # made at its first use: span_id_of
    node.root = None
    node.attributes = attributes
    node.trace_id = trace_id
    node.anchor = anchor
    node.start_unix_nano = anchor + perf
    node.start_perf_ns = perf
    node.duration_ns = None
    node.error = None
    node.children = NO_CHILDREN
    return node


def open_child(parent: Node, name: str, attributes: dict[str, Any]) -> Node:
    """A node for a call ``name`` (its method path) made inside ``parent``, appended to its
    children. (The coroutine and function wrappers carry a copy of this code, inline.)

    A child started once its root has ended is not appended at all: it belongs to no tree
    (it is timed for the metrics all the same). One started while the root freezes its tree
    (from another thread) is in the copy, as unfinished, or not at all.
    """
    node = _new_node(Node)
    node.root = root = parent.root or parent
    node.name = name
    node.span_id = None  # made at its first use: span_id_of
    node.attributes = attributes
    node.trace_id = parent.trace_id
    node.start_perf_ns = _perf_ns()
    node.duration_ns = None
    node.error = None
    node.children = NO_CHILDREN
    if root.duration_ns is None:  # the tree is not frozen yet
        children = parent.children
        if children is NO_CHILDREN:
            add_first_child(parent, node)
        else:
            children.append(node)
    return node


def add_first_child(parent: Node, node: Node) -> None:
    """Give ``parent`` a children list of its own, holding ``node`` (or append to the one
    another thread just gave it)."""
    _acquire()
    try:
        if parent.children is NO_CHILDREN:
            parent.children = [node]
        else:
            parent.children.append(node)
    finally:
        _release()


def close_child(node: Node, duration_ns: int, error: dict[str, str] | None) -> None:
    """Record a child's end on its live node: the error first, then the duration, the order
    :func:`freeze_tree` relies on (a node it sees finished has its error)."""
    node.error = error
    node.duration_ns = duration_ns


def finish_root(
    node: RootNode, end_perf_ns: int, error: dict[str, str] | None, telemetry: Telemetry
) -> None:
    """Freeze the tree of root ``node`` and submit it as a ProfileRecord.

    A failing submit (``QueueFullError`` under ``overflow="raise"`` included) is counted and
    logged once, never raised: the user's call has already produced its result, which must not
    be lost to telemetry.
    """
    node.error = error
    node.duration_ns = end_perf_ns - node.start_perf_ns  # from now on, no child is appended
    node.resource = telemetry.resource
    node.record = None
    try:
        telemetry._submit(root_record(node))
    except Exception as exc:
        telemetry._internal_error("profile", exc)


def root_record(root: RootNode) -> ProfileRecord:
    """The record of a finished root, its tree frozen as it was when the root ended.

    :func:`finish_root` calls it on the caller; a root that returns without an error or
    hooks is not frozen by its caller: the live
    :class:`RootNode` goes into the handlers' queues in its record's place, and the consumer
    that takes it calls this (``_lane.Lane``), off the application's path. What a child did
    after the root's end does not show: a child that ended later is frozen as unfinished, one
    started later was never appended. The first call freezes, the others (one per handler
    queue) return the same record.
    """
    if root.record is not None:
        return root.record
    duration = root.duration_ns
    assert duration is not None  # handed over only once it returned
    if root.children is NO_CHILDREN:  # a leaf (most roots): freeze_tree's tuple, directly
        attributes = root.attributes or None
        start = root.start_unix_nano
        span_id = root.span_id or span_id_of(root)
        frozen = (root.name, span_id, None, start, duration, root.error, attributes, ())
        unfinished = 0
    else:
        frozen, unfinished = freeze_tree(root, root.start_perf_ns + duration)
    record: ProfileRecord = _new_record(
        ProfileRecord, (root.start_unix_nano, root.trace_id, frozen, root.resource, unfinished)
    )
    root.record = record  # the live tree stays as it is: the aiohttp integration reads it
    return record


def freeze_tree(root: RootNode, end_perf_ns: int) -> tuple[FrozenNode, int]:
    """The tree of a finished ``root`` as a :data:`FrozenNode`, and how many of its nodes
    were still running at ``end_perf_ns``, the root's end (frozen as unfinished: duration up
    to ``end_perf_ns``, ``unfinished: True`` in a copy of their attributes).

    The live nodes keep their durations and children (a late child may still be writing to
    its own; the aiohttp integration reads the tree of a slow request), but each of them
    points to :data:`ENDED_TREE` instead of its root: that breaks the reference cycles, and
    still tells a late child that its tree is frozen.

    Nodes get their span ids here when nothing read them before (:func:`span_id_of`): the
    walk holds the tree lock, which a concurrent log's first read of an id waits for.
    """
    # The root's tuple is built here, not by _freeze: _freeze then only ever sees Node objects,
    # and CPython keeps its attribute accesses specialized (a RootNode among them costs every
    # node of every tree, about 5 % of a root with three children).
    unfinished = [0]
    anchor = root.anchor
    children = root.children
    with _lock:  # span ids: see span_id_of
        span_id = root.span_id
        if span_id is None:
            try:
                span_id = _pop_span_id()
            except IndexError:
                span_id = _new_span_id()
            root.span_id = span_id
        frozen = (
            root.name,
            span_id,
            None,
            root.start_unix_nano,
            root.duration_ns,
            root.error,
            root.attributes or None,  # any dict keeps a tuple tracked, even an empty one
            tuple([_freeze(c, span_id, anchor, end_perf_ns, unfinished) for c in children])
            if children
            else (),
        )
    return frozen, unfinished[0]


def _freeze(
    node: Node, parent_span_id: str, anchor: int, end_perf_ns: int, unfinished: list[int]
) -> FrozenNode:
    node.root = ENDED_TREE
    duration = node.duration_ns
    start = node.start_perf_ns
    if duration is None or start + duration > end_perf_ns:  # running when the root ended
        unfinished[0] += 1
        duration = max(0, end_perf_ns - start)
        error = None
        attributes: dict[str, Any] | None = {**node.attributes, "unfinished": True}
    else:
        error = node.error  # read after the duration: see close_child
        attributes = node.attributes or None  # any dict keeps a tuple tracked, even empty
    span_id = node.span_id
    if span_id is None:  # under the lock freeze_tree holds
        try:
            span_id = _pop_span_id()
        except IndexError:
            span_id = _new_span_id()
        node.span_id = span_id
    children = node.children
    return (
        node.name,
        span_id,
        parent_span_id,
        anchor + start,
        duration,
        error,
        attributes,
        tuple([_freeze(c, span_id, anchor, end_perf_ns, unfinished) for c in children])
        if children
        else (),
    )


def owner_name(func: Any) -> str:
    """The ``Owner`` of a root's method path, as phanos' ``Context.prepend_method_class`` finds
    it: the class defining a bound method; for a function, the module-level class its
    ``__qualname__`` names (``Class.method`` -> ``Class``); a descriptor's ``__objclass__``;
    else the last component of the module's name. A class nested in another class or in a
    function is not found at module level, so its methods get the module, as in phanos.
    """
    meth = func
    if inspect.ismethod(meth):
        for cls in inspect.getmro(meth.__self__.__class__):
            if meth.__name__ in cls.__dict__:
                return cls.__name__
        meth = getattr(meth, "__func__", meth)
    if inspect.isfunction(meth):
        prefix = meth.__qualname__.split(".<locals>", 1)[0].rsplit(".", 1)[0]
        owner = getattr(inspect.getmodule(meth), prefix, None)
        if isinstance(owner, type):
            return owner.__name__
    objclass = getattr(meth, "__objclass__", None)
    if objclass is not None:
        return str(objclass.__name__)
    module = inspect.getmodule(meth)
    return module.__name__.rsplit(".", 1)[-1] if module is not None else ""


def error_info(exc: BaseException, service: str) -> dict[str, str]:
    """A node's ``error``: type, message and the stable fingerprint. Never raises, even for
    an exception whose ``__str__`` does."""
    type_name = exception_type_name(exc)
    try:
        fingerprint = exception_fingerprint(exc, service)
    except Exception:
        fingerprint = hashlib.sha1(f"{type_name}\n{service}".encode()).hexdigest()
    return {"type": type_name, "message": safe_str(exc), "fingerprint": fingerprint}


def current_span_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the profiled call running in this context, or None.

    For the logger: a log record made inside a profiled call carries these ids, so logs and
    spans join up. Costs one ``ContextVar.get`` and two attribute reads.
    """
    node = _current.get()
    if node is None:
        return None
    return node.trace_id, node.span_id or span_id_of(node)
