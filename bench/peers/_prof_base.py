"""The interfaces of the adapters ``bench/bench_profiler.py`` drives.

A **profiler adapter** wraps one library's "time this function and record where it was called
from" decorator, configured so that its records go to a destination that does nothing:

    peer.setup()          configure the library (called inside the running event loop for the
                          async scenarios, in a plain synchronous program for the sync ones)
    peer.decorate(fn)     the library's decorator applied to ``fn`` (sync or async def)
    peer.finish()         shut down, in a synchronous program
    await peer.afinish()  shut down, on the running loop

The harness builds the same functions twice, once plain and once through ``decorate``, and
times both in the same process; the difference is the overhead per profiled call.

A **metric adapter** makes metric updates literally in its own loop (as the logging adapters
do), so the timed cost is the update plus a ``for`` loop, not an extra Python call per update:

    peer.setup(workdir)           configure the library (a synchronous program)
    peer.loop(op)                 a function ``run(values)`` that performs operation ``op``
                                  once per item of ``values`` (the item is the value observed
                                  or set, where the operation takes one)
    peer.finish()                 shut down

Operations (``peer.ops`` lists those the library has): ``count`` (unlabelled counter +1),
``labels_dict`` (two-label counter +1 with the labels passed per call), ``labels_call``
(``.labels(route=..., code=...).inc()``), ``bound`` (``.inc()`` on a child bound once),
``observe`` (unlabelled histogram), ``gauge`` (unlabelled gauge set).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

__all__ = ["LABELS", "OPS", "PROM_BUCKETS", "MetricPeer", "ProfilerPeer"]

_F = TypeVar("_F", bound=Callable[..., Any])

OPS: tuple[str, ...] = ("count", "labels_dict", "labels_call", "bound", "observe", "gauge")
"""Every metric operation the harness knows, in table order."""

LABELS: dict[str, str] = {"route": "/checkout", "code": "200"}
"""The two labels of the labelled counter."""

PROM_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Histogram buckets used wherever a library lets the benchmark choose (prometheus_client's
defaults); the values observed spread over them."""


class _Described(abc.ABC):
    label: ClassVar[str]
    """Row label in the results tables."""
    packages: ClassVar[tuple[str, ...]]
    """Distributions whose installed versions the harness prints."""
    config: ClassVar[str]
    """One line saying how the library is configured (printed under the tables)."""

    def details(self) -> dict[str, Any]:
        """Library-side counters worth reporting after ``finish`` (drops, ...), JSON-able."""
        return {}


class ProfilerPeer(_Described):
    """A profiling decorator whose records go nowhere."""

    @abc.abstractmethod
    def setup(self) -> None:
        """Configure the library (inside the running loop when the scenario is async)."""

    @abc.abstractmethod
    def decorate(self, fn: _F) -> _F:
        """The library's profiling decorator applied to ``fn``."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Shut down, in a synchronous program."""

    async def afinish(self) -> None:
        """Shut down, on the running loop (the synchronous shutdown unless overridden)."""
        self.finish()


class MetricPeer(_Described):
    """A metrics library with its instruments created in ``setup``."""

    ops: ClassVar[tuple[str, ...]]
    """The operations of :data:`OPS` this library has."""
    calls: ClassVar[dict[str, str]]
    """Operation -> the literal call timed, for the report."""
    equivalents: ClassVar[dict[str, str]] = {}
    """Operations the library has no form of -> the operation of :attr:`ops` a user of the
    library would write instead; the report shows that measurement on both rows."""

    @abc.abstractmethod
    def setup(self, workdir: str) -> None:
        """Configure the library and create the instruments; files (if any) under ``workdir``."""

    @abc.abstractmethod
    def loop(self, op: str) -> Callable[[Sequence[float]], None]:
        """A function performing ``op`` once per item of its argument."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Shut down."""
