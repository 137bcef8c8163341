"""Context attributes: key/values that ride along with every log made in the current context.

Stored in a ``ContextVar`` so concurrent tasks never see each other's values: a task created
with ``create_task``/``gather`` starts with a copy of its parent's context, and a thread sees it
when started through ``contextvars.copy_context().run``. The aiohttp middleware binds the request
id, route and method here; users bind their own with :func:`bind_context`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

__all__ = ["bind_context", "get_context", "reset_context", "set_context"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("pontem_async.context", default=_EMPTY)


def get_context() -> Mapping[str, Any]:
    """The attributes bound in the current context (read-only)."""
    return _context.get()


def set_context(**attributes: Any) -> Token[Mapping[str, Any]]:
    """Merge ``attributes`` into the current context; undo with :func:`reset_context`."""
    merged = {**_context.get(), **attributes}
    return _context.set(MappingProxyType(merged))


def reset_context(token: Token[Mapping[str, Any]]) -> None:
    """Restore the context as it was before the :func:`set_context` that returned ``token``."""
    _context.reset(token)


@contextmanager
def bind_context(**attributes: Any) -> Iterator[Mapping[str, Any]]:
    """Bind ``attributes`` to every log made inside the ``with`` block (and tasks it starts)::

        with pa.bind_context(job_id="j-42"):
            log.info("started")        # attributes include job_id="j-42"
    """
    token = set_context(**attributes)
    try:
        yield _context.get()
    finally:
        _context.reset(token)
