"""aiologger's JSON logger with its async file handler, inside an asyncio loop.

Each call creates an ``asyncio.Task`` (and walks the stack for the caller's file and line);
the task formats the record and awaits ``aiofiles`` write + flush, each a thread-pool round
trip. Its ``shutdown()`` does not wait for log tasks still pending, so ``finish`` first waits
for every other task on the loop, as an application must before shutting down.
"""

from __future__ import annotations

import asyncio
import os

from peers._base import MESSAGE, AsyncPeer


class AiologgerJson(AsyncPeer):
    label = "aiologger"
    packages = ("aiologger", "aiofiles")
    # ~220k pending tasks after the latency run would take ~40 s to drain: that run's
    # process exits without finishing (see _measure.measure_latency).
    finish_after_latency = False
    config = (
        "JsonLogger(level=INFO) + AsyncFileHandler(path) with ExtendedJsonFormatter; "
        "logger.info(msg, extra={'k': ..., 'i': ...}) from the loop thread (task not awaited); "
        "finish waits for the pending tasks, then await logger.shutdown()"
    )

    async def setup(self, workdir: str) -> None:
        from aiologger.formatters.json import ExtendedJsonFormatter
        from aiologger.handlers.files import AsyncFileHandler
        from aiologger.levels import LogLevel
        from aiologger.loggers.json import JsonLogger

        self._logger = JsonLogger(name="bench", level=LogLevel.INFO)
        handler = AsyncFileHandler(os.path.join(workdir, "records.jsonl"))
        handler.formatter = ExtendedJsonFormatter()
        self._logger.add_handler(handler)

    def log_range(self, start: int, stop: int) -> None:
        info = self._logger.info
        for i in range(start, stop):
            info(MESSAGE, extra={"k": "v", "i": i})

    async def finish(self) -> None:
        me = asyncio.current_task()
        while pending := [t for t in asyncio.all_tasks() if t is not me]:
            await asyncio.wait(pending)
        await self._logger.shutdown()
