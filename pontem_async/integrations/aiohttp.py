"""aiohttp: one call tree, one log context and one latency sample per request; lifecycle; endpoints.

::

    from aiohttp import web
    import pontem_async as pa
    from pontem_async.integrations.aiohttp import setup

    app = web.Application()
    app.router.add_get("/items/{id}", get_item)
    setup(app)                              # the default telemetry; or setup(app, telemetry)
    web.run_app(app)

What :func:`setup` adds:

- **a middleware** that makes each request a profile **root** named ``http:<METHOD> <route>``
  (the route *pattern*, ``/items/{id}``, never the raw path: bounded cardinality), so
  ``@pa.profile`` calls in the handler nest under it. The root's attributes carry the request id,
  route, method and status. The request id is the ``X-Request-ID`` header when it is a sane
  token (1-128 characters of ``A-Z a-z 0-9 - _ . : / + =``), else a new random one; it is sent
  back in the response's ``X-Request-ID``. While the request runs, ``request_id``,
  ``http.route`` and ``http.request.method`` are bound into the log context, so every log the
  handler makes (in tasks it starts too) carries them;
- per request **one log**: ``request handled`` (info; error level for a 5xx answer), or
  ``slow request`` (warn) when it took ``slow_ms`` or more, or ``request failed`` (error, with
  the exception's type, message, stack and fingerprint) when the handler raised. Each carries
  ``http.response.status_code`` and ``latency_ms``. A fraction ``slow_sample_rate`` of the slow
  warnings also carries the full record of the request: its call tree with each call's duration
  (``calls``), the path and query, the peer and the user agent;
- the histogram ``http.server.request.duration`` (seconds, OTel's name and buckets) labelled
  ``http.route``, ``http.request.method`` (OTel's list; anything else is ``_OTHER``) and
  ``http.response.status_code``;
- exceptions: the handler's exception is logged once (also when several applications or
  middlewares see it) and re-raised unchanged; aiohttp then answers 500 (504 for a
  ``TimeoutError``), and so do the log, the metric and the call tree. aiohttp's
  ``HTTPException`` s (``raise web.HTTPNotFound()``) are answers, not failures: they get their
  status, the request id header, and are re-raised unchanged without an error log or an error in
  the call tree. A request cancelled because the client went away counts as status 499;
- **lifecycle**: ``on_startup`` starts the telemetry's pipeline on the application's loop (unless
  it runs already); ``on_cleanup`` (last) shuts it down within ``shutdown_timeout`` seconds, so
  the records of the last requests and of the other cleanup hooks are delivered;
- ``GET /metrics``: the metrics registry in the OpenMetrics format when the ``Accept`` header asks
  for ``application/openmetrics-text`` (Prometheus does), else the 0.0.4 text format;
- the telemetry HTTP API of panoptes under ``api_prefix`` (see
  :mod:`pontem_async.integrations._telemetry_api`).

The endpoints added here are left out of the request metrics, logs and call trees.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pontem_async._calltree import (
    ATTRIBUTES,
    DURATION,
    ERROR,
    NAME,
    children_of,
    current_node,
    current_var,
)
from pontem_async._exposition import CONTENT_TYPES
from pontem_async.context import reset_context, set_context
from pontem_async.integrations._telemetry_api import add_routes
from pontem_async.profiler import Profiler
from pontem_async.profiler import profiler as default_profiler
from pontem_async.telemetry import get_default

if TYPE_CHECKING:
    from pontem_async._calltree import Node
    from pontem_async.telemetry import Telemetry

__all__ = [
    "DURATION_BUCKETS",
    "DURATION_METRIC",
    "INSTRUMENTATION_KEY",
    "REQUEST_ID_HEADER",
    "Instrumentation",
    "setup",
]

REQUEST_ID_HEADER = "X-Request-ID"
DURATION_METRIC = "http.server.request.duration"
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""OTel's advised buckets for ``http.server.request.duration`` (seconds)."""
ROOT_OWNER = "http"
UNMATCHED_ROUTE = "unmatched"
"""The ``http.route`` of a request no route matched (404/405 answered by aiohttp)."""
CLIENT_CLOSED = 499
_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:/+=]{1,128}")
_LOGGED_ATTR = "__pontem_async_logged__"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Instrumentation:
    """What :func:`setup` installed on one application (``app[INSTRUMENTATION_KEY]``)."""

    def __init__(
        self,
        telemetry: Telemetry,
        profiler: Profiler,
        slow_ms: float | None,
        slow_sample_rate: float,
        logger_name: str,
    ) -> None:
        self.telemetry = telemetry
        self.profiler = profiler
        self.slow_ms = slow_ms
        self.slow_sample_rate = slow_sample_rate
        self.log = telemetry.get_logger(logger_name)
        self.duration = telemetry.metrics.histogram(
            DURATION_METRIC,
            "Duration of HTTP server requests",
            unit="s",
            labels=["http.route", "http.request.method", "http.response.status_code"],
            buckets=list(DURATION_BUCKETS),
        )
        self.internal: set[web.AbstractResource] = set()
        self._roots: dict[tuple[str, str], Callable[..., Awaitable[web.StreamResponse | None]]] = {}
        self._series: dict[tuple[str, str, int], Any] = {}

    # ------------------------------------------------------------------ the middleware

    def _root(self, method: str, route: str) -> Callable[..., Awaitable[web.StreamResponse | None]]:
        """The profiled entry of (method, route), made once: its name is the root's name."""
        key = (method, route)
        root = self._roots.get(key)
        if root is None:
            root = self.profiler.profile(name=f"{ROOT_OWNER}:{method} {route}")(_call)
            self._roots[key] = root
        return root

    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and resource in self.internal:
            return await handler(request)
        route = UNMATCHED_ROUTE if resource is None else resource.canonical
        method = request.method if request.method in _METHODS else "_OTHER"
        given = request.headers.get(REQUEST_ID_HEADER)
        request_id = given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        context = set_context(
            request_id=request_id, **{"http.route": route, "http.request.method": method}
        )
        no_parent = current_var.set(None)  # a root, even if the server was started in a call
        started = time.perf_counter_ns()
        outcome = _Outcome(request_id, route, method)
        try:
            response = await self._root(method, route)(request, handler, outcome)
        except asyncio.CancelledError:
            self._finish(request, outcome, CLIENT_CLOSED, started, None)
            raise
        except Exception as exc:
            self._finish(request, outcome, _error_status(exc), started, exc)
            raise
        finally:
            current_var.reset(no_parent)
            reset_context(context)
        answer = outcome.http_exception
        if answer is not None:
            _echo_id(answer, request_id)
            self._finish(request, outcome, answer.status, started, None)
            raise answer
        assert response is not None  # _call returns None only with an HTTPException
        _echo_id(response, request_id)
        self._finish(request, outcome, response.status, started, None)
        return response

    def _finish(
        self,
        request: web.Request,
        outcome: _Outcome,
        status: int,
        started: int,
        exc: Exception | None,
    ) -> None:
        """The request's one log and its latency sample. Never raises into the request."""
        seconds = (time.perf_counter_ns() - started) / 1e9
        latency_ms = round(seconds * 1000, 3)
        try:
            self._observe(outcome.route, outcome.method, status, seconds)
            attributes: dict[str, Any] = {
                "request_id": outcome.request_id,
                "http.route": outcome.route,
                "http.request.method": outcome.method,
                "http.response.status_code": status,
                "latency_ms": latency_ms,
                "url.path": request.path,
            }
            log = self.log
            if exc is not None:
                if _first_report(exc):
                    log.exception("request failed", exc, **attributes)
            elif status >= 500:
                log.error("request handled", **attributes)
            elif self.slow_ms is not None and latency_ms >= self.slow_ms:
                attributes["slow_ms"] = self.slow_ms
                if self.slow_sample_rate >= 1.0 or random.random() < self.slow_sample_rate:
                    attributes.update(_full_record(request, outcome.node))
                log.warn("slow request", **attributes)
            else:
                log.info("request handled", **attributes)
        except Exception as err:  # telemetry never breaks the application
            self.telemetry._internal_error("aiohttp middleware", err)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self.duration.labels(
                **{
                    "http.route": route,
                    "http.request.method": method,
                    "http.response.status_code": str(status),
                }
            )
            if len(self._series) < 10_000:
                self._series[key] = series
        series.observe(seconds)


class _Outcome:
    """What the profiled part of a request tells the middleware."""

    __slots__ = ("http_exception", "method", "node", "request_id", "route")

    def __init__(self, request_id: str, route: str, method: str) -> None:
        self.request_id = request_id
        self.route = route
        self.method = method
        self.http_exception: web.HTTPException | None = None
        self.node: Node | None = None


async def _call(
    request: web.Request, handler: _Handler, outcome: _Outcome
) -> web.StreamResponse | None:
    """The root call of a request (profiled once per route and method by ``_root``).

    An ``HTTPException`` is an answer: it is handed back through ``outcome`` and re-raised by the
    middleware, so the call tree does not count it as an error. The root's attributes are set
    here, before the root closes and its tree is submitted."""
    node = current_node()
    outcome.node = node
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _tag(node, outcome, exc.status)
        outcome.http_exception = exc
        return None
    except asyncio.CancelledError:
        _tag(node, outcome, CLIENT_CLOSED)
        raise
    except Exception as exc:
        _tag(node, outcome, _error_status(exc))
        raise
    _tag(node, outcome, response.status)
    return response


def _error_status(exc: Exception) -> int:
    """The status aiohttp answers an unhandled exception with: 504 for a timeout, else 500."""
    return 504 if isinstance(exc, asyncio.TimeoutError) else 500


def _tag(node: Node | None, outcome: _Outcome, status: int) -> None:
    if node is not None:  # None when profiling is off (handle_records=False)
        node[ATTRIBUTES] = {  # a new dict: the site's own attributes are shared by every call
            **node[ATTRIBUTES],
            "request_id": outcome.request_id,
            "http.route": outcome.route,
            "http.request.method": outcome.method,
            "http.response.status_code": status,
        }


def _echo_id(response: web.StreamResponse, request_id: str) -> None:
    if not response.prepared:  # a streamed response has sent its headers already
        response.headers[REQUEST_ID_HEADER] = request_id


def _first_report(exc: BaseException) -> bool:
    """True the first time an exception is seen: nested applications log it once."""
    if getattr(exc, _LOGGED_ATTR, False):
        return False
    with contextlib.suppress(AttributeError):  # __slots__ only: it may be logged twice
        setattr(exc, _LOGGED_ATTR, True)
    return True


def _calls(node: Node) -> list[dict[str, Any]]:
    """A call tree as ``{name, duration_ms, error, children}`` dicts (children iterated
    without recursion limits: trees can be deep)."""
    out: list[dict[str, Any]] = []
    stack: list[tuple[Node, list[dict[str, Any]]]] = [(node, out)]
    while stack:
        current, into = stack.pop()
        children: list[dict[str, Any]] = []
        duration = current[DURATION]
        error = current[ERROR]
        into.append(
            {
                "name": current[NAME],
                "duration_ms": None if duration is None else round(duration / 1e6, 3),
                "error": None if error is None else error.get("type"),
                "children": children,
            }
        )
        stack.extend((child, children) for child in reversed(children_of(current)))
    return out


def _full_record(request: web.Request, node: Node | None) -> dict[str, Any]:
    """What a sampled slow warning adds: the request's own call tree and where it came from."""
    full: dict[str, Any] = {
        "url.query": request.query_string,
        "client.address": request.remote,
        "user_agent.original": request.headers.get("User-Agent"),
    }
    if node is not None:
        full["calls"] = _calls(node)
    return full


# ---------------------------------------------------------------------------------- setup

INSTRUMENTATION_KEY: web.AppKey[Instrumentation] = web.AppKey("pontem_async", Instrumentation)


def _metrics_handler(telemetry: Telemetry) -> _Handler:
    async def metrics(request: web.Request) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        fmt: Any = "openmetrics" if "application/openmetrics-text" in accept else "text"
        body = telemetry.metrics.exposition(fmt).encode("utf-8")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPES[fmt]})

    return metrics


def _check(
    slow_ms: float | None, slow_sample_rate: float, metrics_path: str | None, api_prefix: str | None
) -> None:
    if slow_ms is not None and (
        isinstance(slow_ms, bool) or not isinstance(slow_ms, int | float) or not slow_ms > 0
    ):
        raise ValueError(
            f"slow_ms: expected a positive number of milliseconds or None, got {slow_ms!r}"
        )
    if (
        isinstance(slow_sample_rate, bool)
        or not isinstance(slow_sample_rate, int | float)
        or not 0 <= slow_sample_rate <= 1
    ):
        raise ValueError(
            f"slow_sample_rate: expected a number from 0 to 1, got {slow_sample_rate!r}"
        )
    if metrics_path is not None and not (isinstance(metrics_path, str) and metrics_path[:1] == "/"):
        raise ValueError(
            f"metrics_path: expected a path starting with '/' or None, got {metrics_path!r}"
        )
    if api_prefix is not None and not (
        isinstance(api_prefix, str) and api_prefix[:1] == "/" and not api_prefix.endswith("/")
    ):
        raise ValueError(
            f"api_prefix: expected a path starting with '/' and not ending with '/', or None, "
            f"got {api_prefix!r}"
        )


def setup(
    app: web.Application,
    telemetry: Telemetry | None = None,
    *,
    profiler: Profiler | None = None,
    slow_ms: float | None = 1000.0,
    slow_sample_rate: float = 1.0,
    metrics_path: str | None = "/metrics",
    api_prefix: str | None = "/telemetry",
    logger_name: str = "http",
    manage_lifecycle: bool = True,
    shutdown_timeout: float | None = None,
) -> Instrumentation:
    """Instrument ``app``; see the module docstring. Call it before the application starts.

    Args:
        telemetry: default: the module's default instance (``pa.init``'s).
        profiler: whose call trees the requests are; default: the telemetry's own (``pa.profiler``
            for the default instance, a new :class:`~pontem_async.Profiler` for another one).
        slow_ms: requests taking this long or longer log ``slow request``; None: never.
        slow_sample_rate: fraction (0-1) of slow requests whose warning carries the full record.
        metrics_path: where ``GET`` serves the metrics; None: not served.
        api_prefix: where the telemetry HTTP API is mounted; None: not mounted.
        logger_name: the name of the logger of the request logs.
        manage_lifecycle: start the pipeline on startup and shut it down on cleanup.
        shutdown_timeout: deadline of that shutdown (default: ``pipeline.shutdown_timeout``).

    Returns:
        the :class:`Instrumentation`, also at ``app[INSTRUMENTATION_KEY]``.

    Raises:
        ValueError: an argument out of range, named in the message.
        RuntimeError: ``app`` is already set up, or frozen (started).
    """
    _check(slow_ms, slow_sample_rate, metrics_path, api_prefix)
    if INSTRUMENTATION_KEY in app:
        raise RuntimeError("this application is already set up by pontem_async")
    tel = telemetry if telemetry is not None else get_default()
    if profiler is None:
        profiler = default_profiler if tel is default_profiler.telemetry else Profiler(tel)
    inst = Instrumentation(tel, profiler, slow_ms, float(slow_sample_rate), logger_name)
    app[INSTRUMENTATION_KEY] = inst
    handle = inst.middleware

    @web.middleware
    async def pontem_async_middleware(
        request: web.Request, handler: _Handler
    ) -> web.StreamResponse:
        return await handle(request, handler)

    app.middlewares.insert(0, pontem_async_middleware)  # outermost: sees every answer
    if metrics_path is not None:
        route = app.router.add_get(metrics_path, _metrics_handler(tel), allow_head=False)
        if route.resource is not None:
            inst.internal.add(route.resource)
    if api_prefix is not None:
        inst.internal.update(add_routes(app.router, api_prefix, tel))
    if manage_lifecycle:

        async def start(app: web.Application) -> None:
            if not tel.running:
                tel.start()

        async def stop(app: web.Application) -> None:
            await tel.shutdown(shutdown_timeout)

        app.on_startup.insert(0, start)  # first: the other startup hooks can log
        app.on_cleanup.append(stop)  # last: the other cleanup hooks' records are delivered
    return inst
