"""Handlers: where records go. One module per handler; the contract is in ``base``."""

from pontem_async.handlers.base import ALL_KINDS, Handler, RecordFilter
from pontem_async.handlers.file import RotatingFileHandler
from pontem_async.handlers.stream import StreamHandler

__all__ = ["ALL_KINDS", "Handler", "RecordFilter", "RotatingFileHandler", "StreamHandler"]
