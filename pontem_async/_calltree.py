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

Thread safety without a lock on the calls' path: children can be appended and closed from
other threads while the root freezes its tree. A node is a list and its children follow its
fields in it (:data:`Node`): a call appends itself to its parent (``list.append`` is atomic)
and the freeze copies a node's children with one slice (atomic too) and reads each node once,
so a concurrent child is either in the copy (finished, or unfinished) or not at all. A child
writes its error before its duration, and the freeze reads them in the other order, so a
finished node in the copy always has its error. The tree lock is only taken off the calls'
path: by the freeze, and by the first read of a child's span id (:func:`span_id_of`).

Memory: a node references its children, and while the tree is live each child references its
root (:data:`ROOT`); the freeze breaks that cycle, so a frozen tree is freed by reference
counting as soon as the handlers are done with its record, without waiting for the cyclic GC.
A call allocates one collected object, its node (a root also its record, made by the
consumer): the collector's work grows with them; no table grows with the number of roots.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias

from pontem_async.encoding.jsonl import safe_str
from pontem_async.fingerprint import exception_fingerprint, exception_type_name
from pontem_async.records import FrozenNode, ProfileRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = [
    "ANCHOR",
    "ANCHOR_TTL_NS",
    "ATTRIBUTES",
    "CALLS_DROPPED",
    "DROPPED_CALLS",
    "DURATION",
    "ENDED_TREE",
    "ERROR",
    "MAX_CHILDREN",
    "NAME",
    "NODE_FIELDS",
    "RECORD",
    "RESOURCE",
    "ROOT",
    "ROOT_FIELDS",
    "SPAN_ID",
    "START",
    "START_UNIX_NANO",
    "TRACE_ID",
    "Node",
    "RootNode",
    "children_of",
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
    "root_record_locked",
    "span_id_of",
    "tree_lock",
]

_current: ContextVar[Node | None] = ContextVar("pontem_async.profile_node", default=None)
current_var = _current
"""The ContextVar itself, for the wrappers (they set and reset it around each call)."""
current_node = _current.get
"""The node of the profiled call running in this context, or None."""

_lock = threading.RLock()
tree_lock = _lock
"""Held while a span id is made (:func:`span_id_of`) and while trees freeze (a consumer holds
it for a batch). Reentrant, so a log made while it is held (a failure reported by the consumer
that holds it) can still read a span id."""
_acquire = _lock.acquire  # called, not ``with _lock``: half the cost (no bound __enter__/__exit__)
_release = _lock.release
_new_record = tuple.__new__  # ProfileRecord's fields, minus a Python frame
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
    is frozen, by the consumer (:func:`root_record`, which holds the tree lock for a whole
    batch of trees), so the application's thread never pays for them. The first read that
    finds none (a log made inside the call, the freeze) makes it, under the tree lock, so a
    log and a freeze that race on it agree on one id; once set it never changes, so reading a
    set id needs no lock (``node[SPAN_ID] or span_id_of(node)``).
    """
    _acquire()
    try:
        span_id: str | None = node[SPAN_ID]
        if span_id is None:
            try:
                span_id = _pop_span_id()
            except IndexError:
                span_id = _new_span_id()
            node[SPAN_ID] = span_id
    finally:
        _release()
    return span_id


Node: TypeAlias = list[Any]
"""A profiled call while its tree is live: a plain ``list`` of the fields the call itself must
write, no more, read and written through the indexes below (:data:`NAME` ... :data:`ATTRIBUTES`),
followed by its children: a child node's from :data:`NODE_FIELDS` on, a root's from
:data:`ROOT_FIELDS` on (:func:`children_of`). A call appends itself to its parent, so a node
needs no list of its own for its children, and ``list.append`` (and the slice the freeze copies
them with) being atomic, threads need no lock to add children to the same parent.

Why a list and not a class with ``__slots__``: building one is a single ``BUILD_LIST`` and
freeing it is a plain list's deallocation, where a slots object is an ``object.__new__`` call,
nine attribute stores and a far slower deallocation: about 1,100 CPU instructions less per
profiled call, a twentieth of a flat root (measured with callgrind).

The record's other fields are derived when the root freezes the tree: a node's parent span id
is its parent's span id, its wall start is the root's :data:`ANCHOR` plus its :data:`START`.
:data:`ROOT` is None on a root (a :data:`RootNode`), its root on any other node: a child
started once the root has a duration (its tree is frozen) is not appended to the live tree, so
calls made from a task that outlives its root never make a finished tree grow. (A root and its
children form a reference cycle while the root runs; the freeze points them to
:data:`ENDED_TREE` instead, so the nodes are freed by reference counting alone.)
:func:`open_root` and :func:`open_child` build them (the wrappers carry the child's list
literal inline).
"""
RootNode: TypeAlias = list[Any]
"""A root: a :data:`Node` with five more fields. :data:`ANCHOR` is ``time_ns() -
perf_counter_ns()`` (read at most once a millisecond, see :data:`_anchor`), so every node's
wall start is one addition, consistent with the monotonic durations of the same tree;
:data:`RESOURCE` (the telemetry's resource at the root's end) and :data:`RECORD` (None until
the first :func:`root_record`) are set when the root returns; :data:`CALLS_DROPPED` counts
the calls its tree did not keep (:data:`MAX_CHILDREN`). Once it returned, a root stands
in the handlers' queues for its record: the only plain ``list`` a queue ever holds."""

NAME = 0
"""The method path (``Owner:root.child``)."""
SPAN_ID = 1
"""The span id, or None until its first use (:func:`span_id_of`)."""
TRACE_ID = 2
ROOT = 3
"""None on a root; the root on a child of a live tree; :data:`ENDED_TREE` once frozen."""
START = 4
"""``perf_counter_ns()`` at the call's start."""
DURATION = 5
"""None while the call runs; its duration in ns once it ended (a child writes its
:data:`ERROR` first, see :func:`close_child`)."""
ERROR = 6
ATTRIBUTES = 7
ANCHOR = 8
START_UNIX_NANO = 9
RESOURCE = 10
RECORD = 11
CALLS_DROPPED = 12
"""How many calls the tree did not keep (:data:`MAX_CHILDREN`)."""
NODE_FIELDS = 8
"""Fields of a child node: its children follow them."""
ROOT_FIELDS = 13
"""Fields of a root node: its children follow them."""

MAX_CHILDREN = 10_000
"""Calls kept directly under one call. A root that runs for the life of the process (a
worker's loop, a ``main()`` that is profiled) would otherwise keep every call it ever made:
past this many, the calls made directly under a node are still timed (``time_profiler``) but
join no tree, and the record counts them in its root's attributes (:data:`DROPPED_CALLS`).
The check is one ``len()`` of the parent, fields included, so a root keeps 5 calls less than a
child does; a drop's count is a read and a write, so calls that several threads drop at the
same moment may be counted once."""
DROPPED_CALLS = "pontem.dropped_calls"


def children_of(node: Node) -> Node:
    """A copy of ``node``'s children (a slice: atomic, so a child that another thread appends
    meanwhile is in it or not, never half)."""
    return node[ROOT_FIELDS:] if node[ROOT] is None else node[NODE_FIELDS:]


ENDED_TREE: Node = ["", None, "", None, 0, 0, None, {}]
"""What a frozen tree's nodes point to as their root: it has a duration, so a child started
under any of them is not appended (see :func:`open_child`)."""


def open_root(name: str, attributes: dict[str, Any]) -> RootNode:
    """A new root node, in a new trace (128-bit trace id; its 64-bit span id is made at its
    first use, :func:`span_id_of`)."""
    try:
        trace_id = _pop_trace_id()
    except IndexError:
        _refill(_trace_ids, 32)
        trace_id = _pop_trace_id()
    perf = _perf_ns()
    anchor, read_at = _anchor
    if perf - read_at > ANCHOR_TTL_NS or perf < read_at:
        anchor = _refresh_anchor()
    # NAME, SPAN_ID, TRACE_ID, ROOT, START, DURATION, ERROR, ATTRIBUTES,
    # ANCHOR, START_UNIX_NANO, RESOURCE, RECORD, CALLS_DROPPED
    return [
        name, None, trace_id, None, perf, None, None, attributes,
        anchor, anchor + perf, None, None, 0,
    ]  # fmt: skip


def open_child(parent: Node, name: str, attributes: dict[str, Any]) -> Node:
    """A node for a call ``name`` (its method path) made inside ``parent``, appended to its
    children. (The coroutine and function wrappers carry a copy of this code, inline.)

    A child started once its root has ended is not appended at all: it belongs to no tree
    (it is timed for the metrics all the same). One started while the root freezes its tree
    (from another thread) is in the copy, as unfinished, or not at all.
    """
    root = parent[ROOT] or parent
    # NAME, SPAN_ID, TRACE_ID, ROOT, START, DURATION, ERROR, ATTRIBUTES
    node = [name, None, parent[TRACE_ID], root, _perf_ns(), None, None, attributes]
    if root[DURATION] is None:  # the tree is not frozen yet
        if len(parent) < MAX_CHILDREN + NODE_FIELDS:
            parent.append(node)
        else:  # the parent keeps no more calls
            root[CALLS_DROPPED] += 1
    return node


def close_child(node: Node, duration_ns: int, error: dict[str, str] | None) -> None:
    """Record a child's end on its live node: the error first, then the duration, the order
    :func:`freeze_tree` relies on (a node it sees finished has its error)."""
    node[ERROR] = error
    node[DURATION] = duration_ns


def finish_root(
    node: RootNode, end_perf_ns: int, error: dict[str, str] | None, telemetry: Telemetry
) -> None:
    """Freeze the tree of root ``node`` and submit it as a ProfileRecord.

    A failing submit (``QueueFullError`` under ``overflow="raise"`` included) is counted and
    logged once, never raised: the user's call has already produced its result, which must not
    be lost to telemetry.
    """
    node[ERROR] = error
    node[DURATION] = end_perf_ns - node[START]  # from now on, no child is appended
    node[RESOURCE] = telemetry.resource
    try:
        telemetry._submit(root_record(node))
    except Exception as exc:
        telemetry._internal_error("profile", exc)


def root_record(root: RootNode) -> ProfileRecord:
    """The record of a finished root, its tree frozen as it was when the root ended.

    :func:`finish_root` calls it on the caller; a root that returns without an error or
    hooks is not frozen by its caller: the live
    :data:`RootNode` goes into the handlers' queues in its record's place, and the consumer
    that takes it makes it (``_lane.Lane``, through :func:`root_record_locked`, holding the
    tree lock once for its whole batch), off the application's path. What a child did after
    the root's end does not show: a child that ended later is frozen as unfinished, one
    started later was never appended. The first call freezes, the others (one per handler
    queue) return the same record.
    """
    _acquire()
    try:
        return root_record_locked(root)
    finally:
        _release()


def root_record_locked(root: RootNode) -> ProfileRecord:
    """:func:`root_record`, for a caller that holds :data:`tree_lock` (nodes get their span
    ids here when nothing read them before, see :func:`span_id_of`)."""
    record: ProfileRecord | None = root[RECORD]
    if record is not None:
        return record
    duration = root[DURATION]
    assert duration is not None  # handed over only once it returned
    start = root[START_UNIX_NANO]
    span_id = root[SPAN_ID]
    if span_id is None:
        try:
            span_id = _pop_span_id()
        except IndexError:
            span_id = _new_span_id()
        root[SPAN_ID] = span_id
    if len(root) == ROOT_FIELDS:  # a leaf (most roots): freeze_tree's tuple, directly
        attributes = root[ATTRIBUTES] or None
        if root[CALLS_DROPPED]:  # (only with MAX_CHILDREN below 6)
            attributes = _with_dropped_calls(root)
        frozen = (root[NAME], span_id, None, start, duration, root[ERROR], attributes, ())
        unfinished = 0
    else:
        frozen, unfinished = freeze_tree(root, root[START] + duration)
    record = _new_record(ProfileRecord, (start, root[TRACE_ID], frozen, root[RESOURCE], unfinished))
    root[RECORD] = record  # the live tree stays as it is: the aiohttp integration reads it
    return record


def freeze_tree(root: RootNode, end_perf_ns: int) -> tuple[FrozenNode, int]:
    """The tree of a finished ``root`` (whose span id is set) as a :data:`FrozenNode`, and how
    many of its nodes were still running at ``end_perf_ns``, the root's end (frozen as
    unfinished: duration up to ``end_perf_ns``, ``unfinished: True`` in a copy of their
    attributes). The caller holds :data:`tree_lock`: nodes get their span ids here when
    nothing read them before (:func:`span_id_of`).

    The live nodes keep their durations and children (a late child may still be writing to
    its own; the aiohttp integration reads the tree of a slow request), but each of them
    points to :data:`ENDED_TREE` instead of its root: that breaks the reference cycles, and
    still tells a late child that its tree is frozen.
    """
    unfinished = [0]
    anchor = root[ANCHOR]
    span_id = root[SPAN_ID]
    frozen = (
        root[NAME],
        span_id,
        None,
        root[START_UNIX_NANO],
        root[DURATION],
        root[ERROR],
        # any dict keeps a tuple tracked, even an empty one
        _with_dropped_calls(root) if root[CALLS_DROPPED] else (root[ATTRIBUTES] or None),
        tuple([_freeze(c, span_id, anchor, end_perf_ns, unfinished) for c in root[ROOT_FIELDS:]]),
    )
    return frozen, unfinished[0]


def _with_dropped_calls(root: RootNode) -> dict[str, Any]:
    """The root's attributes, plus how many calls its full tree did not take."""
    return {**root[ATTRIBUTES], DROPPED_CALLS: root[CALLS_DROPPED]}


def _freeze(
    node: Node, parent_span_id: str, anchor: int, end_perf_ns: int, unfinished: list[int]
) -> FrozenNode:
    node[ROOT] = ENDED_TREE
    duration = node[DURATION]
    start = node[START]
    if duration is None or start + duration > end_perf_ns:  # running when the root ended
        unfinished[0] += 1
        duration = max(0, end_perf_ns - start)
        error = None
        attributes: dict[str, Any] | None = {**node[ATTRIBUTES], "unfinished": True}
    else:
        error = node[ERROR]  # read after the duration: see close_child
        attributes = node[ATTRIBUTES] or None  # any dict keeps a tuple tracked, even empty
    span_id = node[SPAN_ID]
    if span_id is None:  # under the tree lock (see freeze_tree)
        try:
            span_id = _pop_span_id()
        except IndexError:
            span_id = _new_span_id()
        node[SPAN_ID] = span_id
    children = node[NODE_FIELDS:]  # a copy: see children_of
    return (
        node[NAME],
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
    return node[TRACE_ID], node[SPAN_ID] or span_id_of(node)
