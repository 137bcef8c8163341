"""Handlers that write phanos' log lines, for users migrating from phanos.

phanos' ``LoggerHandler``/``NamedLoggerHandler`` (``phanos/publisher.py``) log each batch of
metric records through ``OutputFormatter.record_to_str``: ``profiler: <metric>, method:
<method path>, value: <value> <units>[, labels: k=v, ...]``. These pontem-async handlers take the
profile records (call trees) and write the same lines, one per profiled call, children before
their parent as phanos recorded them, so log-based alerts and greps keep working.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pontem_async._profile_state import TIME_PROFILER
from pontem_async._redact import show
from pontem_async.handlers.base import Handler
from pontem_async.records import CallNode, ProfileRecord, Record

__all__ = ["LoggerHandler", "NamedLoggerHandler", "phanos_lines"]

LoggerLike = logging.Logger | logging.LoggerAdapter[Any]


def _post_order(root: CallNode) -> list[CallNode]:
    """The nodes of a tree, each after its children (iterative: trees can be deep)."""
    out: list[CallNode] = []
    stack: list[tuple[CallNode, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            out.append(node)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))
    return out


def phanos_lines(record: ProfileRecord, error_raised_label: bool = True) -> list[str]:
    """phanos' ``OutputFormatter.record_to_str`` lines of a call tree, one per call, in the
    order phanos recorded them (a call after the calls it made)."""
    lines = []
    for node in _post_order(record.root):
        ms = round((node.duration_ns or 0) / 1e6, 2)
        line = f"profiler: {TIME_PROFILER}, method: {node.name}, value: {ms} mS"
        if error_raised_label:
            line += f", labels: error_raised={node.error is not None}"
        lines.append(line)
    return lines


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """phanos' default "PHANOS" logger output, on the current ``sys.stdout`` at each write."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _phanos_logger() -> logging.Logger:
    logger = logging.getLogger("PHANOS")
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_Stdout())
    return logger


class LoggerHandler(Handler):
    """Logs each call tree as phanos' ``LoggerHandler`` does: one line per profiled call
    (``profiler: time_profiler, method: Owner:root.child, value: 1.23 mS, labels:
    error_raised=False``), one log call per tree.

    Args:
        handler_name: phanos' name of the handler (the pontem ``name``).
        logger: a stdlib logger (or its name); default: phanos' ``PHANOS`` logger, printing to
            stdout at DEBUG.
        level: the stdlib level of the log calls (default DEBUG).
        error_raised_label: write the ``labels: error_raised=...`` part.
        **options: ``kinds``, ``filter`` (see :class:`Handler`); ``kinds`` default to
            ``profile``. The logging runs in an executor, off the event loop.
    """

    default_kinds = frozenset({"profile"})

    def __init__(
        self,
        handler_name: str | None = None,
        logger: LoggerLike | str | None = None,
        level: int = logging.DEBUG,
        *,
        error_raised_label: bool = True,
        **options: Any,
    ) -> None:
        if handler_name is not None:
            options["name"] = handler_name
        super().__init__(**options)
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if logger is not None and not isinstance(logger, logging.Logger | logging.LoggerAdapter):
            raise TypeError(f"logger: expected a logging.Logger or its name, got {show(logger)}")
        self.logger: LoggerLike = logger if logger is not None else _phanos_logger()
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"level: expected a stdlib logging level (int), got {show(level)}")
        self.log_level = level
        self.error_raised_label = bool(error_raised_label)

    @property
    def handler_name(self) -> str:
        """phanos' name for :attr:`name`."""
        return self.name

    def _log(self, messages: list[str]) -> None:
        for message in messages:
            self.logger.log(self.log_level, message)

    async def emit(self, batch: Sequence[Record]) -> None:
        messages = [
            "\n".join(phanos_lines(record, self.error_raised_label))
            for record in batch
            if isinstance(record, ProfileRecord)
        ]
        if messages:
            await asyncio.get_running_loop().run_in_executor(None, self._log, messages)


class NamedLoggerHandler(LoggerHandler):
    """phanos' ``NamedLoggerHandler``: a :class:`LoggerHandler` given the logger's name."""

    def __init__(
        self,
        handler_name: str | None = None,
        logger_name: str = "PHANOS",
        level: int = logging.DEBUG,
        **options: Any,
    ) -> None:
        if not isinstance(logger_name, str):
            raise TypeError(f"logger_name: expected a str, got {show(logger_name)}")
        super().__init__(handler_name, logging.getLogger(logger_name), level, **options)
