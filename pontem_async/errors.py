"""Exceptions raised by pontem-async.

Telemetry never raises into application code because a handler failed; the exceptions below are
for mistakes the caller can fix (bad configuration, bad arguments) and for the one overflow
policy that asks for an exception::

    PontemError
     ├── ConfigError        invalid configuration value; the message starts with its key path
     ├── ValidationError    invalid argument of a data call (``pa.metrics.series``,
     │                      ``pa.log_config``); the message starts with the argument's name
     └── QueueFullError     a handler's queue is full and the overflow policy is ``raise``

Records submitted after shutdown raise nothing: they are counted as dropped (reason ``closed``).
"""

from __future__ import annotations

__all__ = ["ConfigError", "PontemError", "QueueFullError", "ValidationError"]


class PontemError(Exception):
    """Base of every exception pontem-async raises on purpose."""


class ConfigError(PontemError, ValueError):
    """An invalid configuration value; ``key_path`` names where it is (``handlers.file.path``)."""

    def __init__(self, key_path: str, message: str) -> None:
        self.key_path = key_path
        self.reason = message
        super().__init__(f"{key_path}: {message}" if key_path else message)


class ValidationError(PontemError, ValueError):
    """An invalid argument of a data call, raised at the call site before anything is recorded.

    ``argument`` names the argument (``values``, ``steps``, ``labels``...), ``reason`` says what
    is wrong; the message is ``"<argument>: <reason>"``. A ValueError, so code that already
    catches ValueError for bad metric values keeps working.
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.reason = message
        super().__init__(f"{argument}: {message}" if argument else message)


class QueueFullError(PontemError):
    """The queue of ``handler`` is full and its overflow policy is ``raise``."""

    def __init__(self, handler: str, size: int) -> None:
        self.handler = handler
        self.size = size
        super().__init__(f"queue of handler {handler!r} is full ({size} records)")
