"""The ``@profile`` wrappers: one per kind of callable, each as thin as it can be.

A profiled call costs: one read of the profiler's state, one node (two clock reads; a root also
takes a trace id, and span ids are made later, at their first use:
:func:`~pontem_async._calltree.span_id_of`), a ``ContextVar`` set and reset, an append to the
parent, and at the end an append of its duration to its method path's list (``_profile_times``
counts those in batches; the wrappers append inline). Everything else
(error details, response sizes, hooks, the root's record) only runs when it applies. Like the
logger's level methods, each wrapper is a closure over what it needs. A child is opened, and
when it returns with no hooks set closed, in the wrapper itself; a root ends in one more frame
(``State.end_root``); errors and hooks go through :meth:`_Site.leave`.

Callables handled, keeping ``functools.wraps`` metadata and what ``inspect`` says about them:

- ``async def``: the node spans the awaited call;
- async generators and generators: the node spans the whole iteration, from the first
  ``__anext__``/``next`` to exhaustion or close, and is current only while the generator's own
  body runs (between two items the consumer's context is its own);
- plain functions, methods and any other callable;
- ``staticmethod``/``classmethod`` objects, so ``@profile`` works above or below them.

Method paths follow phanos (``phanos/tree.py``, ``Context``): a root is named
``Owner:name`` and a child ``<parent path>.name``, where ``name`` is the function's
``__name__`` and ``Owner`` is found as phanos finds it
(:func:`pontem_async._calltree.owner_name`).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any

from pontem_async import _calltree
from pontem_async._calltree import (
    CALLS_DROPPED,
    DURATION,
    NAME,
    NODE_FIELDS,
    ROOT,
    START,
    TRACE_ID,
    Node,
    close_child,
    current_node,
    current_var,
    error_info,
    finish_root,
    open_child,
    open_root,
    owner_name,
)
from pontem_async._profile_times import PathTimes

if TYPE_CHECKING:
    from pontem_async._profile_state import State
    from pontem_async.profiler import Profiler

__all__ = ["PATHS_PER_SITE", "check_options", "profile_callable"]

_perf_ns = time.perf_counter_ns
_get = current_var.get
_set = current_var.set
_reset = current_var.reset


PATHS_PER_SITE = 256
"""How many parent paths a decorated function keeps its own path (and its durations) under;
recursion makes ever longer paths, the calls past this make theirs each time."""


class _Site:
    """One decorated callable: its names and attributes, computed once, the durations of its
    returned calls per method path (:class:`PathTimes`), and the two halves of a profiled
    call for the generator wrappers (:meth:`enter` before the user's code, :meth:`leave`
    after it)."""

    __slots__ = ("_root_times", "attributes", "func", "owner", "paths", "profiler", "segment")

    def __init__(
        self,
        profiler: Profiler,
        func: Callable[..., Any],
        name: str | None,
        attributes: dict[str, Any],
    ) -> None:
        self.profiler = profiler
        self.func = func
        self.attributes = attributes
        self.owner: str | None = None
        if name is None:
            name = getattr(func, "__name__", None) or type(func).__name__
        elif ":" in name:  # "Owner:name" names the owner too
            self.owner, name = name.split(":", 1)
        self.segment = name
        # parent path -> this function's path under it: one name string shared by every call
        # from the same place, and one list of durations
        self.paths: dict[str, PathTimes] = {}
        self._root_times: PathTimes | None = None

    @property
    def root_times(self) -> PathTimes:
        """The path ``Owner:name`` as a root, resolved at the first root call (when the class
        exists), then kept."""
        if self._root_times is None:
            owner = self.owner if self.owner is not None else owner_name(self.func)
            self._root_times = PathTimes(f"{owner}:{self.segment}")
        return self._root_times

    @property
    def root_name(self) -> str:
        return self.root_times.path

    def child_times(self, parent: Node) -> PathTimes:
        """The path of a call made inside ``parent`` (first call from there: the slow path)."""
        parent_path = parent[NAME]
        times = self.paths.get(parent_path)
        if times is None:
            times = PathTimes(f"{parent_path}.{self.segment}")
            if len(self.paths) < PATHS_PER_SITE:
                self.paths[parent_path] = times
        return times

    def enter(self, st: State, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Node:
        """Run the before-hooks, then open the call's node (as a root or as a child)."""
        parent = current_node()
        if st.hooked:
            st.before(parent is None, self.func, args, kwargs)
        if parent is None:
            return open_root(self.root_name, self.attributes)
        return open_child(parent, self.child_times(parent).path, self.attributes)

    def leave(
        self,
        st: State,
        node: Node,
        result: Any,
        error: BaseException | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Close the node (a root: submit its tree), feed the metrics, run the after-hooks.

        Runs after the ContextVar was reset, and never raises: the user's result or exception
        is what the caller gets. Closing comes first and outside the ``try``, so a failing
        metric or hook can never leave a node open or a tree unsubmitted.
        """
        end = _perf_ns()
        duration = end - node[START]
        tel = st.telemetry
        err = None if error is None else error_info(error, tel.service_name)
        root = node[ROOT] is None
        if root:
            finish_root(node, end, err, tel)
        else:
            close_child(node, duration, err)
        try:
            if st.time is not None:
                st.observe_time(node[NAME], error is not None, duration)
            if st.hooked:
                st.after(root, result, args, kwargs)
            if not root:
                return
            if st.size is not None and error is None:
                st.observe_size(node[NAME], result)
            if tel._generation != st.generation:  # reconfigured, started, metric removed
                self.profiler._refresh()
        except Exception as exc:  # telemetry never breaks the application
            tel._internal_error("profiler", exc)


# The two wrappers below are twins: the same steps, one awaiting the call. A child is opened
# inline (the code of ``_calltree.open_child``, which the generator wrappers call: one Python
# frame less per child, about 8 % of a root with three children) and, when it returns with no
# hooks set, closed in two lines; a root ends in ``State.end_root``; errors and hooks go
# through ``_Site.leave``. Change one copy, change the others: the tests run every scenario
# on both wrappers and on the generators.


def _coroutine(site: _Site, func: Callable[..., Any]) -> Callable[..., Any]:
    profiler, leave, attributes = site.profiler, site.leave, site.attributes
    paths, child_times, times = site.paths, site.child_times, site.profiler._times
    waiting = times.waiting.append
    keep = _calltree.MAX_CHILDREN + NODE_FIELDS  # a parent's length while it takes children

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = profiler._state
        if not st.enabled:
            return await func(*args, **kwargs)
        parent = _get()
        if st.hooked:
            st.before(parent is None, func, args, kwargs)
        if parent is None:
            path = site._root_times or site.root_times
            node: Node = open_root(path.path, attributes)
        else:  # open_child, inline (one frame less per child; keep the copies equal)
            path = paths.get(parent[NAME]) or child_times(parent)
            root = parent[ROOT] or parent
            # NAME, SPAN_ID, TRACE_ID, ROOT, START, DURATION, ERROR, ATTRIBUTES
            node = [path.path, None, parent[TRACE_ID], root, _perf_ns(), None, None, attributes]
            if root[DURATION] is None:  # the tree is not frozen yet
                if len(parent) < keep:
                    parent.append(node)
                else:  # the parent keeps no more calls (MAX_CHILDREN)
                    root[CALLS_DROPPED] += 1
        token = _set(node)
        # Each way out resets the context, then closes the node: a return without hooks (the
        # common case) inline or through ``State.end_root``, the rest through ``leave``.
        try:
            result = await func(*args, **kwargs)
        except GeneratorExit:  # the coroutine was closed unfinished: not an error of its own
            _reset(token)
            leave(st, node, None, None, args, kwargs)
            raise
        except BaseException as exc:  # CancelledError included: it did raise out of the call
            _reset(token)
            leave(st, node, None, exc, args, kwargs)
            raise
        _reset(token)
        if st.hooked:
            leave(st, node, result, None, args, kwargs)
        elif parent is None:
            st.end_root(node, result, path)
        else:  # a child's end: the duration on the node (for the freeze) and on its path
            duration = _perf_ns() - node[START]
            node[DURATION] = duration
            if st.time is not None:  # PendingTimes (see there), inline: keep the copies equal
                durations = path.durations
                durations.append(duration)
                if not path.listed:
                    path.listed = True
                    waiting(path)
                if len(durations) >= times.threshold:
                    times.drain_soon(len(durations))
        return result

    return wrapper


def _function(site: _Site, func: Callable[..., Any]) -> Callable[..., Any]:
    profiler, leave, attributes = site.profiler, site.leave, site.attributes
    paths, child_times, times = site.paths, site.child_times, site.profiler._times
    waiting = times.waiting.append
    keep = _calltree.MAX_CHILDREN + NODE_FIELDS  # a parent's length while it takes children

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = profiler._state
        if not st.enabled:
            return func(*args, **kwargs)
        parent = _get()
        if st.hooked:
            st.before(parent is None, func, args, kwargs)
        if parent is None:
            path = site._root_times or site.root_times
            node: Node = open_root(path.path, attributes)
        else:  # open_child, inline (one frame less per child; keep the copies equal)
            path = paths.get(parent[NAME]) or child_times(parent)
            root = parent[ROOT] or parent
            # NAME, SPAN_ID, TRACE_ID, ROOT, START, DURATION, ERROR, ATTRIBUTES
            node = [path.path, None, parent[TRACE_ID], root, _perf_ns(), None, None, attributes]
            if root[DURATION] is None:  # the tree is not frozen yet
                if len(parent) < keep:
                    parent.append(node)
                else:  # the parent keeps no more calls (MAX_CHILDREN)
                    root[CALLS_DROPPED] += 1
        token = _set(node)
        try:  # as in _coroutine
            result = func(*args, **kwargs)
        except BaseException as exc:
            _reset(token)
            leave(st, node, None, exc, args, kwargs)
            raise
        _reset(token)
        if st.hooked:
            leave(st, node, result, None, args, kwargs)
        elif parent is None:
            st.end_root(node, result, path)
        else:  # a child's end: the duration on the node (for the freeze) and on its path
            duration = _perf_ns() - node[START]
            node[DURATION] = duration
            if st.time is not None:  # PendingTimes (see there), inline: keep the copies equal
                durations = path.durations
                durations.append(duration)
                if not path.listed:
                    path.listed = True
                    waiting(path)
                if len(durations) >= times.threshold:
                    times.drain_soon(len(durations))
        return result

    return wrapper


def _async_generator(site: _Site, func: Callable[..., Any]) -> Callable[..., Any]:
    profiler, enter, leave = site.profiler, site.enter, site.leave

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        gen = func(*args, **kwargs)  # before enter: a bad call must not leave a node open
        st = profiler._state
        node = enter(st, args, kwargs) if st.enabled else None
        error: BaseException | None = None
        try:
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = None if node is None else _set(node)
                try:
                    item = await (gen.asend(sent) if thrown is None else gen.athrow(thrown))
                except StopAsyncIteration:
                    return
                finally:
                    thrown = None
                    if token is not None:
                        _reset(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = None if node is None else _set(node)
                    try:
                        await gen.aclose()
                    finally:
                        if token is not None:
                            _reset(token)
                    raise
                except BaseException as exc:  # athrow() into the wrapped generator
                    thrown = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            if node is not None:
                leave(st, node, None, error, args, kwargs)
            error = None

    return wrapper


def _generator(site: _Site, func: Callable[..., Any]) -> Callable[..., Any]:
    profiler, enter, leave = site.profiler, site.enter, site.leave

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = func(*args, **kwargs)  # before enter: a bad call must not leave a node open
        st = profiler._state
        node = enter(st, args, kwargs) if st.enabled else None
        error: BaseException | None = None
        try:
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = None if node is None else _set(node)
                try:
                    item = gen.send(sent) if thrown is None else gen.throw(thrown)
                except StopIteration as stop:
                    return stop.value
                finally:
                    thrown = None
                    if token is not None:
                        _reset(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = None if node is None else _set(node)
                    try:
                        gen.close()
                    finally:
                        if token is not None:
                            _reset(token)
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            if node is not None:
                leave(st, node, None, error, args, kwargs)
            error = None

    return wrapper


def check_options(name: object, attributes: object) -> None:
    """Raise TypeError for options ``@profile(...)`` cannot use, at decoration time."""
    if name is not None and (not isinstance(name, str) or not name.strip(":")):
        raise TypeError(f"name: expected a non-empty str, got {name!r}")
    if attributes is not None and not isinstance(attributes, dict):
        raise TypeError(f"attributes: expected a dict, got {type(attributes).__name__}")


def profile_callable(
    profiler: Profiler,
    func: Any,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Any:
    """``func`` wrapped so that each call becomes a node of the current call tree.

    Raises:
        TypeError: ``func`` is not callable, or ``name``/``attributes`` have the wrong type.
    """
    check_options(name, attributes)
    if isinstance(func, staticmethod):
        return staticmethod(profile_callable(profiler, func.__func__, name, attributes))
    if isinstance(func, classmethod):
        return classmethod(profile_callable(profiler, func.__func__, name, attributes))
    if not callable(func):
        raise TypeError(f"profile: expected a function or method, got {type(func).__name__}")
    site = _Site(profiler, func, name, attributes if attributes is not None else {})
    if inspect.isasyncgenfunction(func):
        return _async_generator(site, func)
    if inspect.iscoroutinefunction(func):
        return _coroutine(site, func)
    if inspect.isgeneratorfunction(func):
        return _generator(site, func)
    return _function(site, func)
