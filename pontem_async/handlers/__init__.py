"""Handlers: where records go. One module per handler; the contract is in ``base``."""

from typing import TYPE_CHECKING, Any

from pontem_async.handlers.base import ALL_KINDS, Handler, RecordFilter
from pontem_async.handlers.file import RotatingFileHandler
from pontem_async.handlers.otlp import OTLPHandler
from pontem_async.handlers.rabbitmq import RabbitMQHandler
from pontem_async.handlers.stream import StreamHandler

if TYPE_CHECKING:
    from pontem_async.handlers.sql import SQLHandler

__all__ = [
    "ALL_KINDS",
    "Handler",
    "OTLPHandler",
    "RabbitMQHandler",
    "RecordFilter",
    "RotatingFileHandler",
    "SQLHandler",
    "StreamHandler",
]

_OPTIONAL = {"SQLHandler": ("pontem_async.handlers.sql", "sql")}
"""Handlers whose dependencies are an extra: imported on first use, not with the package."""


def __getattr__(name: str) -> Any:
    if name not in _OPTIONAL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, extra = _OPTIONAL[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if "pip install" in str(exc):  # the module already says what to install
            raise
        raise ImportError(
            f"pontem_async.handlers.{name} needs an optional dependency ({exc}); "
            f"install it with: pip install 'pontem-async[{extra}]'"
        ) from exc
