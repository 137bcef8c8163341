"""The telemetry HTTP API (panoptes' telemetry server) served by the aiohttp integration: every
endpoint, its answers and its JSON errors, against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async.events import RUN_FILE_NAME, RUN_ID_ATTRIBUTE
from pontem_async.integrations.aiohttp import setup
from pontem_async.testing import MemoryHandler


class Api:
    """A client of the API under ``prefix`` of a served application."""

    def __init__(self, client: aiohttp.ClientSession, base: str) -> None:
        self.client = client
        self.base = base

    async def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        async with self.client.request(
            method, self.base + path, data=data, headers=headers
        ) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            return response.status, await response.json()


async def _serve(
    telemetry: Telemetry, site: Path, prefix: str = "/telemetry"
) -> AsyncIterator[Api]:
    telemetry.events.site_dir = site
    app = web.Application()
    setup(app, telemetry, api_prefix=prefix)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as client:
            yield Api(client, f"http://{host}:{port}{prefix}")
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def telemetry(memory: MemoryHandler) -> AsyncIterator[Telemetry]:
    telemetry = Telemetry(
        "camera", handlers=[memory], flush_interval=0.01, install_signal_handlers=False
    )
    yield telemetry
    if telemetry.events.get_run() is not None:
        telemetry.events.stop_run()


@pytest_asyncio.fixture
async def api(telemetry: Telemetry, tmp_path: Path) -> AsyncIterator[Api]:
    async for served in _serve(telemetry, tmp_path / "site"):
        yield served


# ---------------------------------------------------------------------------- status


@pytest.mark.asyncio
async def test_health_and_ready(api: Api) -> None:
    assert await api.call("GET", "/health") == (200, {"ok": True})
    assert await api.call("GET", "/ready") == (
        200,
        {"ready": True, "run_active": False, "version": pa.__version__},
    )
    await api.call("POST", "/run/start")
    assert (await api.call("GET", "/ready"))[1]["run_active"] is True


# ---------------------------------------------------------------------------- events


@pytest.mark.asyncio
async def test_events_and_the_current_view(
    api: Api, telemetry: Telemetry, memory: MemoryHandler
) -> None:
    assert await api.call("GET", "/current") == (200, {"current": {}})
    status, first = await api.call(
        "POST", "/event", {"type": "weather", "data": {"wind": 3}, "meta": {"src": "mast"}}
    )
    assert status == 200
    assert set(first) == {"seq", "ts", "type", "data", "meta"}
    assert (first["seq"], first["type"], first["data"], first["meta"]) == (
        1,
        "weather",
        {"wind": 3},
        {"src": "mast"},
    )
    _, hidden = await api.call(
        "POST", "/event", {"type": "weather", "data": {"wind": 99}, "make_current": False}
    )
    assert hidden["seq"] == 2
    assert await api.call("GET", "/current") == (200, {"current": {"weather": first}})
    assert await api.call("GET", "/current/weather") == (200, first)
    assert await api.call("GET", "/current/exposure") == (
        404,
        {"detail": "no current event of type 'exposure'"},
    )
    assert await telemetry.flush(timeout=5)
    events = [r for r in memory.records if r.kind == "event"]
    assert [dict(e.data) for e in events] == [{"wind": 3}, {"wind": 99}]
    # the API's own requests are not request-logged or profiled
    assert [r for r in memory.records if r.kind in ("log", "profile")] == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "raw", "detail"),
    [
        (None, b"", "body: expected a JSON object, got an empty body"),
        (None, b"{not json", "body: not valid JSON"),
        ([1, 2], None, "body: expected a JSON object, got list"),
        ({"data": {}}, None, "type: expected a non-empty string"),
        ({"type": 7, "data": {}}, None, "type: expected a non-empty string"),
        ({"type": "t"}, None, "data: required"),
        ({"type": "t", "data": None}, None, "data: expected a JSON object, got null"),
        ({"type": "t", "data": [1]}, None, "data: expected a JSON object, got [1]"),
        ({"type": "t", "data": {}, "make_current": 1}, None, "make_current: expected true or"),
        ({"type": "t", "data": {}, "meta": "m"}, None, 'meta: expected a JSON object, got "m"'),
    ],
)
async def test_a_bad_event_body_is_422_naming_the_field(
    api: Api, body: Any, raw: bytes | None, detail: str
) -> None:
    status, answer = await api.call("POST", "/event", body, raw)
    assert status == 422
    assert answer["detail"].startswith(detail)
    assert await api.call("GET", "/current") == (200, {"current": {}})


# ---------------------------------------------------------------------------- runs


@pytest.mark.asyncio
async def test_a_run_from_start_to_stop(api: Api, telemetry: Telemetry, tmp_path: Path) -> None:
    assert await api.call("GET", "/run") == (404, {"detail": "no run is active"})
    status, run = await api.call("POST", "/run/start")
    assert status == 200
    assert set(run) == {"run_dir", "run_id", "meta", "started_at"}
    assert (run["run_id"], run["meta"]) == ("001", {"run_id": "001"})
    assert run["run_dir"] == str(tmp_path / "site" / "001")
    assert await api.call("GET", "/run") == (200, run)
    assert await api.call("POST", "/run/start", {"run_id": "x"}) == (
        409,
        {"detail": "run '001' is already active"},
    )
    _, envelope = await api.call("POST", "/event", {"type": "exposure", "data": {"seq": 1}})
    assert envelope["meta"] == {"run_id": "001"}
    assert telemetry.resource[RUN_ID_ATTRIBUTE] == "001"
    assert await api.call("POST", "/run/stop") == (200, run)
    assert await api.call("POST", "/run/stop") == (404, {"detail": "no run is active"})
    assert await api.call("GET", "/current") == (200, {"current": {}})  # the run's layer went
    lines = (Path(run["run_dir"]) / RUN_FILE_NAME).read_bytes().splitlines()
    assert [orjson.loads(x)["data"] for x in lines] == [{"seq": 1}]
    status, second = await api.call("POST", "/run/start", {})
    assert (status, second["run_id"]) == (200, "002")


@pytest.mark.asyncio
async def test_run_start_takes_id_dir_and_meta(api: Api, tmp_path: Path) -> None:
    status, run = await api.call(
        "POST", "/run/start", {"run_id": "n1", "run_dir": "nights/n1", "meta": {"op": "ada"}}
    )
    assert status == 200
    assert run["run_id"] == "n1"
    assert run["run_dir"] == str(tmp_path / "site" / "nights" / "n1")
    assert run["meta"] == {"op": "ada", "run_id": "n1"}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ([1], "body: expected a JSON object, got list"),
        ({"run_dir": "/etc"}, "run_dir: expected a relative path inside the site directory"),
        ({"run_dir": "../out"}, "run_dir: expected a relative path inside the site directory"),
        ({"run_dir": 3}, "run_dir: expected a string, got 3"),
        ({"run_id": "a/b"}, "run_id: expected a directory name"),
        ({"run_id": ".."}, "run_id: expected a directory name"),
        ({"meta": [1]}, "meta: expected a JSON object, got [1]"),
    ],
)
async def test_a_bad_run_start_body_is_422_and_starts_nothing(
    api: Api, body: Any, detail: str, tmp_path: Path
) -> None:
    status, answer = await api.call("POST", "/run/start", body)
    assert status == 422
    assert answer["detail"].startswith(detail)
    assert await api.call("GET", "/run") == (404, {"detail": "no run is active"})


@pytest.mark.asyncio
async def test_the_api_mounts_under_any_prefix(telemetry: Telemetry, tmp_path: Path) -> None:
    async for api in _serve(telemetry, tmp_path, prefix="/ops/tel"):
        assert await api.call("GET", "/health") == (200, {"ok": True})
        async with api.client.get(api.base.replace("/ops/tel", "/telemetry") + "/health") as r:
            assert r.status == 404
