"""The telemetry HTTP API of panoptes' telemetry server, served by an aiohttp application.

Mounted under a prefix (``/telemetry`` by default) by
:func:`pontem_async.integrations.aiohttp.setup`. Routes, bodies and answers follow panoptes
(``panoptes.utils.telemetry.server``), so its clients work unchanged:

=====================  =====================================================================
``GET  health``        ``{"ok": true}``
``GET  ready``         ``{"ready": <pipeline running>, "run_active": bool, "version": str}``
``GET  current``       ``{"current": {type: envelope}}``
``GET  current/{type}`` the envelope, or 404
``POST event``         body ``{"type", "data", "make_current"?, "meta"?}`` -> the envelope
``POST run/start``     body ``{"run_dir"?, "run_id"?, "meta"?}`` (or none) -> the run; 409 when
                       a run is active
``POST run/stop``      the run that was active, or 404
``GET  run``           the active run, or 404
=====================  =====================================================================

An envelope is ``{"seq", "ts", "type", "data", "meta"}``; a run is ``{"run_dir", "run_id",
"meta", "started_at"}``. Errors are JSON ``{"detail": "<why>"}`` with 404 (nothing of that
kind), 409 (a run is already active) or 422 (a body that is not the JSON object described, the
field at fault named first).

One departure, because this API has no authentication: ``run_dir`` must be a relative path
inside the site directory (no ``..``); panoptes also accepts any absolute path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pontem_async.encoding.jsonl import safe_str
from pontem_async.events import NoRunError, RunActiveError

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = ["add_routes"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadBody(ValueError):
    """A request body the API cannot accept (answered with 422)."""


def _json(data: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(data, default=safe_str, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, status=status, content_type="application/json")


def _error(status: int, detail: str) -> web.Response:
    return _json({"detail": detail}, status)


async def _object_body(request: web.Request, *, optional: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise _BadBody("body: expected a JSON object, got an empty body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadBody(f"body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise _BadBody(f"body: expected a JSON object, got {type(body).__name__}")
    return body


def _field(body: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    """``body[name]`` if absent/null or of ``kind`` (a JSON true/false is no number), else 422."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        shown = orjson.dumps(value).decode()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise _BadBody(f"{name}: expected {what}, got {shown}")
    return value


def _safe_run_dir(value: str | None) -> str | None:
    if value is None:
        return None
    path = PurePath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise _BadBody(
            f"run_dir: expected a relative path inside the site directory, got {value!r}"
        )
    return value


def add_routes(
    router: web.UrlDispatcher, prefix: str, telemetry: Telemetry
) -> list[web.AbstractResource]:
    """Add the API's routes under ``prefix`` to ``router``; returns the resources added (the
    middleware leaves them out of the request metrics and call trees)."""
    events = telemetry.events

    async def health(request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def ready(request: web.Request) -> web.Response:
        from pontem_async import __version__

        return _json(
            {
                "ready": telemetry.running,
                "run_active": events.run_id is not None,
                "version": __version__,
            }
        )

    async def current(request: web.Request) -> web.Response:
        return _json({"current": events.current()})

    async def current_type(request: web.Request) -> web.Response:
        name = request.match_info["type"]
        found = events.current(name)
        if found is None:
            return _error(404, f"no current event of type {name!r}")
        return _json(found)

    async def post_event(request: web.Request) -> web.Response:
        body = await _object_body(request, optional=False)
        kind = body.get("type")
        if not isinstance(kind, str) or not kind:
            raise _BadBody("type: expected a non-empty string")
        if "data" not in body:
            raise _BadBody("data: required")
        data = _field(body, "data", dict, "a JSON object")
        if data is None:
            raise _BadBody("data: expected a JSON object, got null")
        make_current = _field(body, "make_current", bool, "true or false")
        meta = _field(body, "meta", dict, "a JSON object")
        envelope = events.event(kind, data, make_current is not False, meta)
        return _json(envelope)

    async def run_start(request: web.Request) -> web.Response:
        body = await _object_body(request, optional=True)
        run_dir = _safe_run_dir(_field(body, "run_dir", str, "a string"))
        run_id = _field(body, "run_id", str, "a string")
        if run_id is not None and (not run_id or "/" in run_id or run_id in (".", "..")):
            raise _BadBody(f"run_id: expected a directory name, got {run_id!r}")
        meta = _field(body, "meta", dict, "a JSON object")
        try:
            return _json(events.start_run(run_dir, run_id, meta))
        except RunActiveError as exc:
            return _error(409, str(exc))
        except OSError as exc:
            return _error(500, f"cannot create the run directory: {exc.strerror or exc}")

    async def run_stop(request: web.Request) -> web.Response:
        try:
            return _json(events.stop_run())
        except NoRunError as exc:
            return _error(404, str(exc))

    async def get_run(request: web.Request) -> web.Response:
        run = events.get_run()
        return _error(404, "no run is active") if run is None else _json(run)

    def guarded(handler: _Handler) -> _Handler:
        async def call(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _BadBody as exc:
                return _error(422, str(exc))

        return call

    routes: list[tuple[str, str, _Handler]] = [
        ("GET", "/health", health),
        ("GET", "/ready", ready),
        ("GET", "/current", current),
        ("GET", "/current/{type}", current_type),
        ("POST", "/event", post_event),
        ("POST", "/run/start", run_start),
        ("POST", "/run/stop", run_stop),
        ("GET", "/run", get_run),
    ]
    added = []
    for method, path, handler in routes:
        route = router.add_route(method, prefix + path, guarded(handler))
        added.append(route.resource)
    return [r for r in added if r is not None]
