"""pontem's ``timer``: time a block or a function into a histogram.

One object serves as ``with``, ``async with`` and as a decorator of plain and ``async def``
functions (the wrapper of a coroutine function is itself a coroutine function, so
``inspect.iscoroutinefunction`` and frameworks that check it keep working; ``functools.wraps``
keeps the name, docstring and signature). Time is taken with ``time.perf_counter_ns`` (monotonic,
integer nanoseconds) and converted to the timer's unit once, at the observation. A block that
raises is still timed.

The series is resolved when the timer is created, so a label mistake raises where ``timer(...)``
is written, not when the block ends. As a context manager one timer object may be nested or
re-entered on one thread (starts are kept on a stack); to time concurrent tasks, create one timer
per block (``with pa.metrics.timer("x"):`` does) or use the decorator, which measures each call on
its own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import perf_counter_ns
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

__all__ = ["RECORD_BUCKETS", "Timer", "timer_buckets", "timer_divisor"]

_F = TypeVar("_F", bound=Callable[..., Any])

RECORD_BUCKETS: tuple[float, ...] = (
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0,
    1000.0, 2500.0, 5000.0, 7500.0, 10000.0,
)  # fmt: skip
"""OpenTelemetry's default explicit bounds, which pontem uses for ``record`` and ``timer``
(calibrated for milliseconds)."""

_DIVISORS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


class _Observer(Protocol):
    def observe(self, value: float) -> None: ...


def timer_divisor(unit: str) -> int:
    """Nanoseconds per ``unit``.

    Raises:
        ValueError: ``unit`` is not ``ns``, ``us``, ``ms`` or ``s``.
    """
    divisor = _DIVISORS.get(unit) if isinstance(unit, str) else None
    if divisor is None:
        raise ValueError(f"unit: a timer measures in ns, us, ms or s, got {unit!r}")
    return divisor


def timer_buckets(unit: str) -> tuple[float, ...]:
    """pontem's default (millisecond) bounds, scaled to ``unit`` so they cover the same times."""
    factor = _DIVISORS["ms"] / timer_divisor(unit)
    return tuple(bound * factor for bound in RECORD_BUCKETS)


class Timer:
    """Observes elapsed time in a histogram series; see the module docstring."""

    __slots__ = ("_divisor", "_series", "_starts")

    def __init__(self, series: _Observer, divisor: int) -> None:
        self._series = series
        self._divisor = divisor
        self._starts: list[int] = []

    def __enter__(self) -> Timer:
        self._starts.append(perf_counter_ns())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = perf_counter_ns() - self._starts.pop()
        self._series.observe(elapsed / self._divisor)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: _F) -> _F:
        """Decorate ``func`` (plain or ``async def``): every call is timed on its own."""
        series, divisor = self._series, self._divisor
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
                start = perf_counter_ns()
                try:
                    return await func(*args, **kwargs)
                finally:
                    series.observe((perf_counter_ns() - start) / divisor)

            return cast(_F, timed_coroutine)

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter_ns()
            try:
                return func(*args, **kwargs)
            finally:
                series.observe((perf_counter_ns() - start) / divisor)

        return cast(_F, timed)
