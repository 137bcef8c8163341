"""The profiler: ``@profile`` builds a call tree per root call and feeds the profile metrics.

::

    import pontem_async as pa

    @pa.profile                                  # or @pa.profile(name=..., attributes={...})
    async def handle(request): ...

    class Repo:
        @pa.profile                              # above or below @staticmethod/@classmethod
        @classmethod
        async def load(cls, key): ...

Each profiled call becomes a node of its root's call tree (see ``pontem_async._calltree``); when
the root finishes, the tree is submitted as one ``ProfileRecord``. Every call's duration goes to
the ``time_profiler`` histogram when the call returns, counted in batches that every read of the
histogram catches up on (``pontem_async._profile_times``; ``pontem_async._profile_state`` for
the metrics). Settings come from the telemetry's ``profiler`` configuration section
(``telemetry.profiler_settings``).

phanos users keep their code: ``pa.profiler`` takes phanos' settings dict in
:meth:`Profiler.dict_config`, has ``add_handler``/``delete_handler(s)``/``delete_metric(s)`` and
the ``before_func``/``after_func``/``before_root_func``/``after_root_func`` hooks, called with
phanos' arguments and in phanos' order. Unlike phanos, a hook that raises never breaks the
user's call (the error is logged once and counted in :attr:`Profiler.hook_errors`), a failing
handler never disturbs the profiled code, and the current call tree survives both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from pontem_async._calltree import current_span_ids
from pontem_async._phanos import apply_settings, set_handlers
from pontem_async._phanos_handlers import LoggerHandler, NamedLoggerHandler
from pontem_async._profile_decorator import check_options, profile_callable
from pontem_async._profile_state import (
    HOOK_NAMES,
    RESPONSE_SIZE,
    TIME_PROFILER,
    AfterHook,
    BeforeHook,
    State,
    build_state,
)
from pontem_async._profile_times import PendingTimes
from pontem_async.handlers.base import Handler
from pontem_async.telemetry import Telemetry, get_default

__all__ = [
    "RESPONSE_SIZE",
    "TIME_PROFILER",
    "LoggerHandler",
    "NamedLoggerHandler",
    "Profiler",
    "current_span_ids",
    "profile",
    "profiler",
]

_T = TypeVar("_T")


def _hook(name: str, doc: str) -> Any:
    """A hook attribute: setting it recompiles the state, so calls see it at once."""

    def get(self: Profiler) -> Callable[..., Any] | None:
        return self._hooks[name]

    def set_(self: Profiler, hook: Callable[..., Any] | None) -> None:
        if hook is not None and not callable(hook):
            raise TypeError(f"{name}: expected a callable or None, got {type(hook).__name__}")
        self._hooks[name] = hook
        self._refresh()

    return property(get, set_, doc=doc)


class Profiler:
    """Profiles calls into call trees and metrics for one :class:`Telemetry`.

    Args:
        telemetry: where records and metrics go; default: the module's default instance
            (``pa.profiler`` is the default instance's profiler).

    Attributes:
        job: phanos' ``job`` setting, kept for reference (``dict_config`` also uses it as the
            service name when the telemetry has none).
        logger: stdlib logger for the profiler's own warnings (phanos' ``logger`` setting).
        hook_errors: how many times each hook raised.
    """

    before_func: BeforeHook | None = _hook(
        "before_func", "Called as ``(func, args, kwargs)`` before every profiled call."
    )
    before_root_func: BeforeHook | None = _hook(
        "before_root_func", "Called as ``(func, args, kwargs)`` before every root call."
    )
    after_func: AfterHook | None = _hook(
        "after_func", "Called as ``(result, args, kwargs)`` after every profiled call."
    )
    after_root_func: AfterHook | None = _hook(
        "after_root_func", "Called as ``(result, args, kwargs)`` after every root call."
    )

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self._telemetry = telemetry if telemetry is not None else get_default()
        self.job = ""
        self.logger: logging.Logger | logging.LoggerAdapter[Any] = logging.getLogger("pontem_async")
        self.hook_errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._handle_records = True
        self._hooks: dict[str, Callable[..., Any] | None] = dict.fromkeys(HOOK_NAMES)
        self._deleted: set[str] = set()
        self._handlers: dict[str, Handler] = {}
        self._times = PendingTimes(self)
        self._state: State = build_state(self, True, self._hooks, self._deleted)

    @property
    def telemetry(self) -> Telemetry:
        return self._telemetry

    @property
    def handle_records(self) -> bool:
        """False turns profiling off: decorated callables run as if undecorated (phanos'
        ``handle_records``)."""
        return self._handle_records

    @handle_records.setter
    def handle_records(self, value: bool) -> None:
        self._handle_records = bool(value)
        self._refresh()

    @property
    def handlers(self) -> dict[str, Handler]:
        """Handlers added through this profiler (``add_handler``/``dict_config``), by name."""
        return dict(self._handlers)

    def _refresh(self) -> None:
        self._times.drain()  # what was measured under the old settings is counted under them
        with self._lock:
            self._state = build_state(self, self._handle_records, self._hooks, self._deleted)

    def _hook_failed(self, name: str, exc: Exception) -> None:
        count = self.hook_errors.get(name, 0)
        self.hook_errors[name] = count + 1
        if count == 0:
            self.logger.error(
                "pontem-async profiler hook %s raised %s: %s (ignored; logged once)",
                name,
                type(exc).__name__,
                exc,
            )

    # ------------------------------------------------------------------ the decorator

    @overload
    def profile(self, func: _T, /) -> _T: ...

    @overload
    def profile(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Callable[[_T], _T]: ...

    def profile(
        self,
        func: Any = None,
        /,
        *,
        name: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Any:
        """Profile ``func``: bare (``@profile``) or with options (``@profile(name=...)``).

        Args:
            name: the call's name in method paths instead of ``func.__name__``; ``"Owner:name"``
                also sets the owner a root call is named with.
            attributes: attributes of every node of this function (shared, not copied).

        Raises:
            TypeError: ``func`` is not callable, or an option has the wrong type.
        """
        if func is None:
            check_options(name, attributes)
            return lambda f: profile_callable(self, f, name, attributes)
        return profile_callable(self, func, name, attributes)

    # ------------------------------------------------------------------ phanos' API

    def dict_config(self, settings: Mapping[str, Any]) -> None:
        """Configure from phanos' settings dict (``job``, ``logger``, ``time_profile``,
        ``response_size_profile``, ``handle_records``, ``error_raised_label``, ``handlers``).

        Everything is validated, and every handler built, before anything changes.

        Raises:
            ConfigError: an invalid value, named by its key path (``handlers.out.class``).
        """
        apply_settings(self, settings)

    def add_handler(self, handler: Handler) -> None:
        """Add ``handler`` to the telemetry, replacing this profiler's handler of that name."""
        if not isinstance(handler, Handler):
            raise TypeError(
                f"handler: expected a pontem_async Handler (for phanos' LoggerHandler use "
                f"pontem_async.profiler.LoggerHandler), got {type(handler).__name__}"
            )
        if handler.name in self._handlers:
            self.logger.warning("profiler handler %r already exists: replaced", handler.name)
        others = [h for h in self._telemetry.handlers if h.name != handler.name]
        set_handlers(self._telemetry, [*others, handler])
        self._handlers[handler.name] = handler

    def delete_handler(self, handler_name: str) -> None:
        """Remove the handler called ``handler_name`` that this profiler added (a warning, as
        in phanos, when there is none)."""
        if self._handlers.pop(handler_name, None) is None:
            self.logger.warning("profiler handler %r does not exist", handler_name)
            return
        set_handlers(
            self._telemetry, [h for h in self._telemetry.handlers if h.name != handler_name]
        )

    def delete_handlers(self) -> None:
        """Remove every handler this profiler added."""
        if not self._handlers:
            return
        names, self._handlers = set(self._handlers), {}
        set_handlers(self._telemetry, [h for h in self._telemetry.handlers if h.name not in names])

    def delete_metric(self, item: str) -> None:
        """Delete the metric ``item`` from the registry; for ``time_profiler`` and
        ``response_size`` also stop measuring it (until ``dict_config`` turns it on again)."""
        if item in (TIME_PROFILER, RESPONSE_SIZE):
            self._deleted.add(item)
            self._refresh()
        if not self._telemetry.metrics.remove(item):
            self.logger.warning("metric %r does not exist", item)

    def delete_metrics(
        self, rm_time_profile: bool = False, rm_resp_size_profile: bool = False
    ) -> None:
        """phanos' ``delete_metrics``: the profile metrics chosen by the flags. The profiler owns
        no other metrics, so the rest of the registry is left alone."""
        for item, chosen in (
            (TIME_PROFILER, rm_time_profile),
            (RESPONSE_SIZE, rm_resp_size_profile),
        ):
            if chosen:
                self._deleted.add(item)
                self._telemetry.metrics.remove(item)
        self._refresh()

    def __repr__(self) -> str:
        return f"<Profiler telemetry={self._telemetry!r} handle_records={self._handle_records}>"


profiler = Profiler()
"""The default telemetry instance's profiler (``pa.profiler``)."""
profile = profiler.profile
"""``@pa.profile``: the default profiler's decorator."""
