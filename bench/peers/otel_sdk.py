"""OpenTelemetry SDK logs: LoggerProvider -> BatchLogRecordProcessor -> a file exporter.

The exporter is the SDK's own ``ConsoleLogRecordExporter`` pointed at a file, with a one-line
JSON formatter (``to_json(indent=None)``). The batch processor runs defaults: a 2,048-record
queue that drops when full, 512-record batches, a worker thread that wakes every second or
when a batch is ready. Records go through the logs API directly (``Logger.emit``), which is
cheaper than stdlib ``logging`` + ``LoggingHandler``.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any

from peers._base import MESSAGE, SyncPeer


class OtelSdk(SyncPeer):
    label = "opentelemetry-sdk"
    packages = ("opentelemetry-sdk", "opentelemetry-api")
    config = (
        "LoggerProvider + BatchLogRecordProcessor(defaults: queue 2,048, drops when full) + "
        "ConsoleLogRecordExporter(out=file, one JSON line per record); "
        "logger.emit(timestamp=..., severity_number=INFO, body=msg, attributes={k, i}); "
        "force_flush() + shutdown()"
    )

    def setup(self, workdir: str) -> None:
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import (
            BatchLogRecordProcessor,
            ConsoleLogRecordExporter,
        )
        from opentelemetry.sdk.resources import Resource

        self._file: IO[str] = open(  # noqa: SIM115
            os.path.join(workdir, "records.jsonl"), "w", encoding="utf-8"
        )
        exporter = ConsoleLogRecordExporter(out=self._file, formatter=_one_line)
        self._provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}))
        self._provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        self._logger = self._provider.get_logger("bench")
        self._info_level = SeverityNumber.INFO

    def log_range(self, start: int, stop: int) -> None:
        emit = self._logger.emit
        info = self._info_level
        time_ns = time.time_ns
        for i in range(start, stop):
            emit(
                timestamp=time_ns(),
                severity_number=info,
                severity_text="INFO",
                body=MESSAGE,
                attributes={"k": "v", "i": i},
            )

    def finish(self) -> None:
        self._provider.force_flush()
        self._provider.shutdown()
        self._file.close()


def _one_line(record: Any) -> str:
    return str(record.to_json(indent=None)) + "\n"
