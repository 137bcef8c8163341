"""A scripted OTLP/HTTP collector for the tests: a real aiohttp server on 127.0.0.1.

It runs its own event loop in a daemon thread, so it serves handlers running on the test's loop
and handlers running on a pipeline's private loop alike. Every request body is gunzipped when
it says so and validated strictly (``otlp_validate``); a body that breaks a rule is answered
400 and kept in ``invalid`` so a test can fail on it.

What it answers is scripted: ``answers`` is a queue of :class:`Answer` consumed one per request
(status, body, headers, or ``hang`` seconds of silence first); when empty, ``default`` answers.
``down()`` closes the listening socket and every connection, ``up()`` listens again on the
same port: an outage the handler sees as refused connections.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from otlp_validate import decode_body, validate

_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    document: Any
    status: int  # what the collector answered; 0 when it hung (the client gave up)
    at: float  # time.monotonic() on arrival


class Collector:
    """See the module docstring. Use as a context manager, or call :meth:`close`."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.default = Answer()
        self.received: list[Received] = []
        self.arrivals: list[str] = []  # paths of every request, when it arrived
        self.invalid: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._hanging: set[asyncio.Future[None]] = set()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="otlp-collector", daemon=True
        )
        self._thread.start()
        ready.wait()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # ------------------------------------------------------------------ control

    def up(self) -> None:
        self._call(self._start())

    def down(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        for fut in list(self._hanging):
            if not fut.done():
                fut.set_result(None)
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        arrived = time.monotonic()
        self.arrivals.append(request.path)
        answer = self.answers.popleft() if self.answers else self.default
        status = answer.status
        if answer.hang:
            status = 0  # whatever happens next, the client gave up waiting
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hanging.add(fut)
            try:
                await asyncio.wait_for(fut, answer.hang)
            except asyncio.TimeoutError:
                pass
            finally:
                self._hanging.discard(fut)
        try:
            document = decode_body(raw, request.headers.get("Content-Encoding"))
            validate(request.path.rstrip("/").rsplit("/", 1)[-1], document)
        except Exception as exc:  # anything unreadable is a failure the test must see
            self.invalid.append(f"{request.path}: {exc}")
            return web.json_response({"code": 3, "message": str(exc)}, status=400)
        headers = dict(request.headers.items())
        self.received.append(Received(request.path, headers, document, status, arrived))
        return web.Response(
            status=answer.status,
            body=answer.body,
            headers={"Content-Type": "application/json", **answer.headers},
        )

    # ------------------------------------------------------------------ reading back

    def accepted(self, prefix: str = "") -> list[Received]:
        """Requests under ``prefix`` that were answered 2xx, in arrival order."""
        return [r for r in self.received if r.path.startswith(prefix) and 200 <= r.status < 300]

    def log_bodies(self, prefix: str = "") -> list[str]:
        """Bodies of the log records accepted under ``prefix``, in arrival order."""
        out = []
        for request in self.accepted(prefix):
            if not request.path.endswith("/logs"):
                continue
            for resource_logs in request.document["resourceLogs"]:
                for scope_logs in resource_logs["scopeLogs"]:
                    for record in scope_logs["logRecords"]:
                        out.append(record["body"].get("stringValue"))
        return out

    def metric_names(self, prefix: str = "") -> list[str]:
        names = []
        for request in self.accepted(prefix):
            if request.path.endswith("/metrics"):
                for rm in request.document["resourceMetrics"]:
                    for sm in rm["scopeMetrics"]:
                        names.extend(m["name"] for m in sm["metrics"])
        return names

    def spans(self, prefix: str = "") -> list[dict[str, Any]]:
        spans: list[dict[str, Any]] = []
        for request in self.accepted(prefix):
            if request.path.endswith("/traces"):
                for rs in request.document["resourceSpans"]:
                    for ss in rs["scopeSpans"]:
                        spans.extend(ss["spans"])
        return spans
