"""stdlib ``logging``: the documented non-blocking recipe, QueueHandler -> QueueListener.

The caller's thread runs ``Logger.info`` (record creation, ``QueueHandler.prepare``, which
formats the message and copies the record) and a ``queue.Queue.put``; the listener thread
formats each record as JSON and writes it with a ``FileHandler`` (which flushes per record).
The queue is unbounded (``queue.Queue(-1)``, as in the logging cookbook): nothing is dropped,
memory follows the backlog.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
from typing import Any

from peers._base import MESSAGE, SyncPeer

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra=`` fields are lifted to the top level."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": record.created,
            "level": record.levelname,
            "logger": record.name,
            "body": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                out[key] = value
        return json.dumps(out, default=str)


class StdlibQueue(SyncPeer):
    label = "stdlib logging"
    packages = ()
    config = (
        "logger -> QueueHandler(queue.Queue(-1)) -> QueueListener thread -> FileHandler with "
        "a json.dumps formatter; logger.info(msg, extra={'k': ..., 'i': ...})"
    )

    def setup(self, workdir: str) -> None:
        records: queue.Queue[logging.LogRecord] = queue.Queue(-1)
        self._file_handler = logging.FileHandler(
            os.path.join(workdir, "records.jsonl"), encoding="utf-8"
        )
        self._file_handler.setFormatter(JsonFormatter())
        self._listener = logging.handlers.QueueListener(records, self._file_handler)
        self._listener.start()
        logger = logging.getLogger("bench")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(logging.handlers.QueueHandler(records))
        self._info = logger.info

    def log_range(self, start: int, stop: int) -> None:
        info = self._info
        for i in range(start, stop):
            info(MESSAGE, extra={"k": "v", "i": i})

    def finish(self) -> None:
        self._listener.stop()  # handles everything already queued, then joins the thread
        self._file_handler.close()
