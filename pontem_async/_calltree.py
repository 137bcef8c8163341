"""Call trees: which profiled call ran inside which, one tree per root call.

The current node lives in a ``ContextVar``, so the tree follows the application's own flow:

- a profiled call made while no node is current is a **root**: it starts a new trace;
- a call made while a node is current is that node's child. Tasks created with ``create_task``,
  ``gather`` or a ``TaskGroup`` start with a copy of their creator's context, and threads run
  through ``contextvars.copy_context().run`` (``asyncio.to_thread`` does it) see it too, so
  their calls attach to the node that spawned them; a plain thread starts empty and makes roots;
- two concurrent roots never share anything: each task sees only its own node.

When the root returns (or raises), the tree is closed and submitted as one
:class:`~pontem_async.records.ProfileRecord`, frozen into plain tuples
(:func:`~pontem_async.records.freeze_node`: the GC stops tracking those, see there). A child
still running then (a task nobody awaited, a thread still working) is closed as *unfinished*:
its duration runs to the root's end and its attributes get ``unfinished: True``. From then on
the tree is frozen: the late child's own end, and any call it makes, never touch the submitted
record (those calls still feed the metrics).

Thread safety: children can be appended and closed from other threads while the root closes. One
module lock orders those three operations (child start, child end, root end), so "append to a
tree that was already submitted" and "finish a node that was already closed as unfinished"
cannot happen. It is held for a dict lookup and a few writes, never around user code or I/O.

Memory: a node references its children only; nothing references back (no parent pointer), so a
tree is freed by reference counting as soon as the handlers are done with its record, without
waiting for the cyclic GC; and a call allocates as few collected objects as it can (its node, a
children list only once it has a child, and for a root the record): the collector's work grows
with them.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pontem_async.encoding.jsonl import safe_str
from pontem_async.fingerprint import exception_fingerprint, exception_type_name
from pontem_async.records import CallNode, ProfileRecord, freeze_node

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = [
    "Node",
    "close_child",
    "close_unfinished",
    "current_node",
    "current_span_ids",
    "current_var",
    "error_info",
    "finish_root",
    "open_child",
    "open_root",
    "owner_name",
    "running_traces",
    "tree_lock",
]

_current: ContextVar[Node | None] = ContextVar("pontem_async.profile_node", default=None)
current_var = _current
"""The ContextVar itself, for the wrappers (they set and reset it around each call)."""
current_node = _current.get
"""The node of the profiled call running in this context, or None."""

_lock = threading.Lock()
tree_lock = _lock
"""For the profiler state's fast ends (``State.end_root``/``end_child``), which do what
``finish_root``/``close_child`` do under the same lock."""
_acquire = _lock.acquire
_release = _lock.release
_new_record = tuple.__new__  # ProfileRecord's fields, minus a Python frame
_new_node = object.__new__
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns

_span_ids: list[str] = []
_trace_ids: list[str] = []
"""Random ids made in batches from 4 KiB of ``os.urandom``: popping one costs far less than
formatting ``random.getrandbits(64)`` on each call. ``list.pop`` is atomic, so two threads never
get the same id; a forked child empties both pools, so it never reuses its parent's ids."""
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
    """The slow path of taking an id: refill the pool first."""
    _refill(_span_ids, 16)
    return _pop_span_id()


_running: dict[str, int] = {}
running_traces = _running
"""For every root still running: trace id -> children started and not closed yet. A trace id
missing from it belongs to a finished root (its tree was submitted). Kept here rather than in a
per-tree object shared by the nodes: that would be one more garbage-collected object per call,
and the collector's work grows with them. Read and written under the lock (a root's own insert
excepted: nobody else knows its id yet). A root whose children all finished (the common case)
closes without walking its tree."""


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


NO_CHILDREN: list[CallNode] = _NoChildren()


class Node(CallNode):
    """A :class:`CallNode` that knows its trace: the id, and the clock ``anchor``.

    ``anchor`` is ``time_ns() - perf_counter_ns()``, read once at the root: a child's wall
    start is one addition, consistent with the monotonic durations of the same tree.
    ``__init__`` sets every slot itself instead of calling ``CallNode.__init__``: one Python
    frame less on every profiled call (a test checks that no slot is left unset).
    """

    __slots__ = ("anchor", "trace_id")

    def __init__(
        self,
        name: str,
        span_id: str,
        parent_span_id: str | None,
        attributes: dict[str, Any],
        trace_id: str,
        anchor: int,
        start_perf_ns: int,
    ) -> None:
        self.name = name
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.attributes = attributes
        self.trace_id = trace_id
        self.anchor = anchor
        self.start_unix_nano = anchor + start_perf_ns
        self.start_perf_ns = start_perf_ns
        self.duration_ns: int | None = None
        self.error: dict[str, str] | None = None
        self.children: list[CallNode] = NO_CHILDREN


def open_root(name: str, attributes: dict[str, Any]) -> Node:
    """A new root node, in a new trace (128-bit trace id, 64-bit span id). Sets the slots
    itself on a bare ``object.__new__``, as ``Node.__init__`` would: one Python frame less on
    every call (``test_node_sets_every_callnode_slot`` checks roots and children)."""
    try:
        trace_id = _pop_trace_id()
    except IndexError:
        _refill(_trace_ids, 32)
        trace_id = _pop_trace_id()
    node = _new_node(Node)
    try:
        node.span_id = _pop_span_id()
    except IndexError:
        node.span_id = _new_span_id()
    _running[trace_id] = 0
    unix = _time_ns()
    perf = _perf_ns()
    node.name = name
    node.parent_span_id = None
    node.attributes = attributes
    node.trace_id = trace_id
    node.anchor = unix - perf
    node.start_unix_nano = unix
    node.start_perf_ns = perf
    node.duration_ns = None
    node.error = None
    node.children = NO_CHILDREN
    return node


_PATHS_PER_SITE = 256


def open_child(
    parent: Node, segment: str, paths: dict[str, str], attributes: dict[str, Any]
) -> Node:
    """A node for a call made inside ``parent``, appended to its children.

    ``paths`` (one dict per decorated function) maps a parent's path to the child's, so every
    call from the same place shares one name string instead of building its own; it stops
    growing at a few hundred entries (recursion makes ever longer paths).

    If the parent's tree was already submitted, the node is detached: it is timed (for the
    metrics) but belongs to no tree.
    """
    try:
        span_id = _pop_span_id()
    except IndexError:
        span_id = _new_span_id()
    name = paths.get(parent.name)
    if name is None:
        name = f"{parent.name}.{segment}"
        if len(paths) < _PATHS_PER_SITE:
            paths[parent.name] = name
    trace_id = parent.trace_id
    node = _new_node(Node)  # as in open_root: the slots set here, no __init__ frame
    node.name = name
    node.span_id = span_id
    node.parent_span_id = parent.span_id
    node.attributes = attributes
    node.trace_id = trace_id
    node.anchor = anchor = parent.anchor
    node.start_perf_ns = perf = _perf_ns()
    node.start_unix_nano = anchor + perf
    node.duration_ns = None
    node.error = None
    node.children = NO_CHILDREN
    _acquire()
    try:
        count = _running.get(trace_id)
        if count is not None:
            if parent.children is NO_CHILDREN:
                parent.children = [node]
            else:
                parent.children.append(node)
            _running[trace_id] = count + 1
    finally:
        _release()
    return node


def close_child(node: Node, duration_ns: int, error: dict[str, str] | None) -> None:
    """Record a child's end, unless its tree was submitted meanwhile (then it stays as the
    root closed it: unfinished, or detached)."""
    trace_id = node.trace_id
    _acquire()
    try:
        count = _running.get(trace_id)
        if count is not None:
            node.duration_ns = duration_ns
            node.error = error
            _running[trace_id] = count - 1
    finally:
        _release()


def finish_root(
    node: Node, end_perf_ns: int, error: dict[str, str] | None, telemetry: Telemetry
) -> None:
    """Freeze the tree of root ``node`` and submit it as a ProfileRecord.

    Children still running are closed as unfinished first. A failing submit
    (``QueueFullError`` under ``overflow="raise"`` included) is counted and logged once, never
    raised: the user's call has already produced its result, which must not be lost to
    telemetry.
    """
    _acquire()
    try:
        still_open = _running.pop(node.trace_id, 0)
    finally:
        _release()
    node.duration_ns = end_perf_ns - node.start_perf_ns
    node.error = error
    unfinished = close_unfinished(node, end_perf_ns) if still_open else 0
    try:
        telemetry._submit(
            _new_record(
                ProfileRecord,
                (
                    node.start_unix_nano,
                    node.trace_id,
                    freeze_node(node),
                    telemetry.resource,
                    unfinished,
                ),
            )
        )
    except Exception as exc:
        telemetry._internal_error("profile", exc)


def close_unfinished(root: CallNode, end_perf_ns: int) -> int:
    """Close every node still running at the root's end. Safe without the lock: the trace is
    out of ``_running``, so no other thread appends to or closes a node of this tree any more."""
    count = 0
    for node in root.walk():
        if node.duration_ns is None:
            node.duration_ns = max(0, end_perf_ns - node.start_perf_ns)
            node.attributes = {**node.attributes, "unfinished": True}  # the original is shared
            count += 1
    return count


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
    return node.trace_id, node.span_id
