"""Peer adapters, one module per library; see ``_base`` (logging) and ``_prof_base`` (profiling,
metrics) for the interfaces.

Modules import their library inside ``setup`` so the harness can read labels and versions
without importing every peer into one process.
"""

from __future__ import annotations

import importlib
from typing import cast

from peers._base import AsyncPeer, Peer, SyncPeer
from peers._prof_base import OPS, MetricPeer, ProfilerPeer

__all__ = [
    "METRIC_PEERS",
    "OPS",
    "PEERS",
    "PROFILER_PEERS",
    "AsyncPeer",
    "MetricPeer",
    "Peer",
    "ProfilerPeer",
    "SyncPeer",
    "adapter_class",
    "load",
    "peer_class",
]

PEERS: dict[str, str] = {
    "pa": "peers.pa_sync:PontemAsyncSync",
    "pa-loop": "peers.pa_loop:PontemAsyncLoop",
    "stdlib": "peers.stdlib_queue:StdlibQueue",
    "pontem": "peers.pontem_direct:PontemDirect",
    "structlog": "peers.structlog_orjson:StructlogOrjson",
    "aiologger": "peers.aiologger_json:AiologgerJson",
    "otel": "peers.otel_sdk:OtelSdk",
}
"""Key (as given to ``--only``) -> ``module:class``, in table order."""

PROFILER_PEERS: dict[str, str] = {
    "pa": "peers.prof_pa:PontemAsyncProfiler",
    "phanos": "peers.prof_phanos:PhanosProfiler",
    "otel": "peers.prof_otel:OtelTracer",
}
"""``bench_profiler.py``'s profiling decorators: key -> ``module:class``, in table order."""

METRIC_PEERS: dict[str, str] = {
    "pa": "peers.metric_pa:PontemAsyncMetrics",
    "prometheus": "peers.metric_prometheus:PrometheusMetrics",
    "pontem": "peers.metric_pontem:PontemMetrics",
}
"""``bench_profiler.py``'s metrics libraries: key -> ``module:class``, in table order."""


def adapter_class(spec: str, base: type) -> type:
    """The class named by ``spec`` (``module:class``), checked to derive from ``base``
    (callers ``cast`` the result: ``type[Base]`` parameters reject abstract classes)."""
    module_name, _, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{spec} is not a {base.__name__}")
    return cls


def peer_class(key: str) -> type[Peer]:
    """The logging adapter class registered under ``key``."""
    return cast("type[Peer]", adapter_class(PEERS[key], Peer))


def load(key: str) -> Peer:
    """A fresh adapter instance for ``key``."""
    return peer_class(key)()
