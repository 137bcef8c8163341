"""pontem-async in a synchronous program: the pipeline runs a private loop in a daemon thread.

``overflow="block"`` with a bounded queue: a caller that outruns the file handler waits for
room instead of dropping, so memory stays bounded and nothing is lost.
"""

from __future__ import annotations

import os
from typing import Any

from peers._base import MESSAGE, SyncPeer

QUEUE_SIZE = 10_000


class PontemAsyncSync(SyncPeer):
    label = "pontem-async"
    packages = ("pontem-async", "orjson")
    config = (
        f"pa.init(handlers=[RotatingFileHandler(path, max_bytes=1<<40, compress=False)], "
        f"queue_size={QUEUE_SIZE:_}, overflow='block'); plain sync program, so the pipeline "
        "runs its private loop in a daemon thread; pa.logger.info(msg, k=..., i=...)"
    )

    def setup(self, workdir: str) -> None:
        import pontem_async as pa
        from pontem_async.handlers import RotatingFileHandler

        handler = RotatingFileHandler(
            os.path.join(workdir, "records.jsonl"), max_bytes=1 << 40, compress=False
        )
        self._telemetry = pa.init(
            service_name="bench",
            handlers=[handler],
            queue_size=QUEUE_SIZE,
            overflow="block",
            install_signal_handlers=False,
        )
        self._info = pa.logger.info

    def log_range(self, start: int, stop: int) -> None:
        info = self._info
        for i in range(start, stop):
            info(MESSAGE, k="v", i=i)

    def finish(self) -> None:
        self._report = self._telemetry.shutdown_sync(timeout=300)

    def details(self) -> dict[str, Any]:
        report = getattr(self, "_report", None)
        shutdown = None if report is None else str(report)
        return {"stats": self._telemetry.stats(), "shutdown": shutdown}
