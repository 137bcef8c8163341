"""Peer adapters, one module per library; see ``_base`` for the interface.

Modules import their library inside ``setup`` so the harness can read labels and versions
without importing every peer into one process.
"""

from __future__ import annotations

import importlib

from peers._base import AsyncPeer, Peer, SyncPeer

__all__ = ["PEERS", "AsyncPeer", "Peer", "SyncPeer", "load", "peer_class"]

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


def peer_class(key: str) -> type[Peer]:
    """The adapter class registered under ``key``."""
    module_name, _, class_name = PEERS[key].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Peer)):
        raise TypeError(f"{PEERS[key]} is not a Peer")
    return cls


def load(key: str) -> Peer:
    """A fresh adapter instance for ``key``."""
    return peer_class(key)()
