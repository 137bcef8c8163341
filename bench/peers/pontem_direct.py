"""pontem (the library pontem-async replaces), through its direct API.

Facts from its source (pontem 0.10): ``logger.info`` builds the JSON line on the caller's
thread (``json.dumps``) and ``put_nowait``s it on a module-level ``queue.Queue`` of 10,000
lines, dropping the record when it is full (logged at DEBUG only). A writer thread wakes every
1 s, drains the queue into ``<emit_dir>/logs.jsonl`` and flushes; the file rotates at 10 MB
(gzipped, the 5 newest kept). ``pontem.shutdown()`` stops the writer after a last drain and
closes the file. None of these sizes can be changed through ``pontem.init``.
"""

from __future__ import annotations

from peers._base import MESSAGE, SyncPeer


class PontemDirect(SyncPeer):
    label = "pontem"
    packages = ("pontem",)
    config = (
        "pontem.init(service_name=..., emit_dir=tmp); pontem.logger.info(msg, k=..., i=...); "
        "pontem.shutdown() (fixed 10,000-line queue, drops when full; writer wakes every 1 s)"
    )

    def setup(self, workdir: str) -> None:
        import pontem

        # No metric is recorded, so nothing is ever POSTed; the endpoint is pinned to the
        # loopback anyway so no name lookup of the default collector host can happen.
        pontem.init(service_name="bench", emit_dir=workdir, otlp_endpoint="http://127.0.0.1:9")
        self._info = pontem.logger.info

    def log_range(self, start: int, stop: int) -> None:
        info = self._info
        for i in range(start, stop):
            info(MESSAGE, k="v", i=i)

    def finish(self) -> None:
        import pontem

        pontem.shutdown()
