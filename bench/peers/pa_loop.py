"""pontem-async started inside a running asyncio loop, logging from the loop's own thread.

The pipeline's consumer task shares the loop with the application, so it only runs when the
application yields. ``overflow="block"`` cannot block the loop thread (the consumer would never
run), so this row uses ``overflow="drop_oldest"`` with a queue big enough for the largest burst
measured: nothing is dropped, memory follows the backlog.
"""

from __future__ import annotations

import os
from typing import Any

from peers._base import MESSAGE, AsyncPeer

QUEUE_SIZE = 1 << 21


class PontemAsyncLoop(AsyncPeer):
    label = "pontem-async (loop)"
    packages = ("pontem-async", "orjson")
    config = (
        f"Telemetry(handlers=[RotatingFileHandler(...)], queue_size={QUEUE_SIZE:_}, "
        "overflow='drop_oldest').start() inside async def main; plain log.info(...) from the "
        "loop thread (not await log.ainfo); shutdown() awaited on the loop"
    )

    async def setup(self, workdir: str) -> None:
        from pontem_async import Telemetry
        from pontem_async.handlers import RotatingFileHandler

        handler = RotatingFileHandler(
            os.path.join(workdir, "records.jsonl"), max_bytes=1 << 40, compress=False
        )
        self._telemetry = Telemetry(
            service_name="bench",
            handlers=[handler],
            queue_size=QUEUE_SIZE,
            overflow="drop_oldest",
            install_signal_handlers=False,
        ).start()
        self._info = self._telemetry.logger.info

    def log_range(self, start: int, stop: int) -> None:
        info = self._info
        for i in range(start, stop):
            info(MESSAGE, k="v", i=i)

    async def finish(self) -> None:
        self._report = await self._telemetry.shutdown(timeout=300)

    def details(self) -> dict[str, Any]:
        report = getattr(self, "_report", None)
        shutdown = None if report is None else str(report)
        return {"stats": self._telemetry.stats(), "shutdown": shutdown}
