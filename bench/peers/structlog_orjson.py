"""structlog, configured as its performance guide suggests: orjson renderer, bytes logger.

Everything happens on the caller's thread: processors, ``orjson.dumps`` and the file write
(``BytesLogger`` writes and flushes each line under a lock). No queue, so nothing is dropped.
"""

from __future__ import annotations

import os
from typing import IO

from peers._base import MESSAGE, SyncPeer


class StructlogOrjson(SyncPeer):
    label = "structlog"
    packages = ("structlog", "orjson")
    config = (
        "make_filtering_bound_logger(INFO), processors add_log_level, "
        "TimeStamper(fmt='iso', utc=True), JSONRenderer(serializer=orjson.dumps), "
        "BytesLoggerFactory(file), cache_logger_on_first_use=True; log.info(msg, k=..., i=...)"
    )

    def setup(self, workdir: str) -> None:
        import logging

        import orjson
        import structlog

        self._file: IO[bytes] = open(os.path.join(workdir, "records.jsonl"), "wb")  # noqa: SIM115
        structlog.configure(
            cache_logger_on_first_use=True,
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            logger_factory=structlog.BytesLoggerFactory(self._file),
        )
        self._info = structlog.get_logger().info

    def log_range(self, start: int, stop: int) -> None:
        info = self._info
        for i in range(start, stop):
            info(MESSAGE, k="v", i=i)

    def finish(self) -> None:
        self._file.flush()
        self._file.close()
