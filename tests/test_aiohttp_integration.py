"""The aiohttp integration against a real server on 127.0.0.1 and aiohttp's real client: one call
tree per request, request context in logs, the request log (handled, slow, failed), the latency
histogram, /metrics parsed strictly, and the application lifecycle."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from prometheus_client import parser as text_parser
from prometheus_client.openmetrics import parser as openmetrics_parser

from pontem_async import Telemetry
from pontem_async.integrations.aiohttp import (
    INSTRUMENTATION_KEY,
    REQUEST_ID_HEADER,
    setup,
)
from pontem_async.profiler import Profiler
from pontem_async.records import CallNode, LogRecord, ProfileRecord
from pontem_async.testing import MemoryHandler

HEX32 = re.compile(r"[0-9a-f]{32}")


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 with an ephemeral port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Service:
    """A small instrumented service: profiled calls, logs in tasks, failures of each kind."""

    def __init__(self, telemetry: Telemetry, **options: Any) -> None:
        self.telemetry = telemetry
        self.profiler = Profiler(telemetry)
        self.log = telemetry.get_logger("svc")
        self.raised: list[BaseException] = []
        profile = self.profiler.profile

        @profile
        async def leaf(n: int, part: str) -> None:
            await asyncio.sleep(0.001)
            self.log.info("leaf", n=n, part=part)

        @profile
        async def step(n: int) -> None:
            await asyncio.gather(leaf(n, "a"), leaf(n, "b"))

        async def work(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            await step(n)
            return web.json_response({"n": n})

        async def sleepy(request: web.Request) -> web.Response:
            await step(0)
            await asyncio.sleep(float(request.query.get("s", "0")))
            return web.Response(text="done")

        async def boom(request: web.Request) -> web.Response:
            await step(0)
            exc = LookupError(f"order {request.match_info['n']} missing")
            self.raised.append(exc)
            raise exc

        async def late(request: web.Request) -> web.Response:
            raise TimeoutError("upstream timed out")

        async def missing(request: web.Request) -> web.Response:
            raise web.HTTPNotFound(text="no such thing")

        async def flushes(request: web.Request) -> web.Response:
            self.log.info("before flush")
            ok = await telemetry.flush(timeout=5)
            return web.json_response({"flushed": ok})

        app = web.Application()
        app.router.add_get("/work/{n}", work)
        app.router.add_get("/sleepy", sleepy)
        app.router.add_get("/boom/{n}", boom)
        app.router.add_get("/missing", missing)
        app.router.add_get("/late", late)
        app.router.add_get("/flush", flushes)
        self.instrumentation = setup(app, telemetry, profiler=self.profiler, **options)
        self.app = app


@pytest_asyncio.fixture
async def telemetry(memory: MemoryHandler) -> AsyncIterator[Telemetry]:
    """Not started: the application's startup hook starts it (and its cleanup shuts it down)."""
    telemetry = Telemetry(
        "shop", handlers=[memory], flush_interval=0.01, install_signal_handlers=False
    )
    yield telemetry
    if telemetry.running:
        await telemetry.shutdown(timeout=5)


def logs(memory: MemoryHandler, body: str | None = None) -> list[LogRecord]:
    return [
        r for r in memory.records if isinstance(r, LogRecord) and (body is None or r.body == body)
    ]


def profiles(memory: MemoryHandler) -> list[ProfileRecord]:
    return [r for r in memory.records if isinstance(r, ProfileRecord)]


def shape(node: CallNode) -> tuple[str, list[Any]]:
    return node.name, sorted(shape(child) for child in node.children)


# ---------------------------------------------------------------------------- call trees


@pytest.mark.asyncio
async def test_200_concurrent_requests_make_200_separate_trees(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:

        async def get(n: int) -> tuple[int, str]:
            headers = {REQUEST_ID_HEADER: f"req-{n}"}
            async with client.get(f"{url}/work/{n}", headers=headers) as response:
                assert (await response.json()) == {"n": n}
                return response.status, response.headers[REQUEST_ID_HEADER]

        answers = await asyncio.gather(*(get(n) for n in range(200)))
        assert answers == [(200, f"req-{n}") for n in range(200)]
        assert await telemetry.flush(timeout=10)

    trees = profiles(memory)
    assert len(trees) == 200
    root = "http:GET /work/{n}"
    expected = (root, [(f"{root}.step", [(f"{root}.step.leaf", []), (f"{root}.step.leaf", [])])])
    assert all(shape(tree.root) == expected for tree in trees)
    by_request = {tree.root.attributes["request_id"]: tree for tree in trees}
    assert sorted(by_request) == sorted(f"req-{n}" for n in range(200))
    assert len({tree.trace_id for tree in trees}) == 200
    for tree in trees:
        assert tree.root.attributes == {
            "request_id": tree.root.attributes["request_id"],
            "http.route": "/work/{n}",
            "http.request.method": "GET",
            "http.response.status_code": 200,
        }
    # each leaf's logs belong to the tree of their own request, never to another one
    leaves = logs(memory, "leaf")
    assert len(leaves) == 400
    for record in leaves:
        tree = by_request[record.attributes["request_id"]]
        assert record.attributes["request_id"] == f"req-{record.attributes['n']}"
        assert record.trace_id == tree.trace_id
        leaf_spans = {leaf.span_id for leaf in tree.root.children[0].children}
        assert record.span_id in leaf_spans


@pytest.mark.asyncio
async def test_request_context_is_bound_into_every_log_and_a_bad_id_is_replaced(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        async with client.get(f"{url}/work/1") as response:
            generated = response.headers[REQUEST_ID_HEADER]
        async with client.get(f"{url}/work/2", headers={REQUEST_ID_HEADER: "x y"}) as response:
            replaced = response.headers[REQUEST_ID_HEADER]
        assert await telemetry.flush(timeout=5)
    assert HEX32.fullmatch(generated)
    assert HEX32.fullmatch(replaced)
    assert generated != replaced
    context = {
        (
            r.attributes["request_id"],
            r.attributes["http.route"],
            r.attributes["http.request.method"],
        )
        for r in logs(memory, "leaf")
    }
    assert context == {(generated, "/work/{n}", "GET"), (replaced, "/work/{n}", "GET")}
    handled = logs(memory, "request handled")
    assert [r.attributes["http.response.status_code"] for r in handled] == [200, 200]
    assert all(r.attributes["latency_ms"] >= 0 for r in handled)
    assert [r.attributes["url.path"] for r in handled] == ["/work/1", "/work/2"]


# ---------------------------------------------------------------------------- request logs


@pytest.mark.asyncio
async def test_a_slow_request_warns_with_its_full_record(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry, slow_ms=50)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        async with client.get(f"{url}/sleepy?s=0.08", headers={"User-Agent": "probe/1"}) as r:
            assert r.status == 200
        assert await telemetry.flush(timeout=5)
    (slow,) = logs(memory, "slow request")
    assert slow.severity == 13
    attributes = dict(slow.attributes)
    assert attributes["latency_ms"] >= 50
    assert attributes["slow_ms"] == 50
    assert attributes["http.route"] == "/sleepy"
    assert attributes["url.query"] == "s=0.08"
    assert attributes["user_agent.original"] == "probe/1"
    assert attributes["client.address"] == "127.0.0.1"
    (calls,) = attributes["calls"]
    assert calls["name"] == "http:GET /sleepy"
    assert calls["duration_ms"] >= 50
    assert [c["name"] for c in calls["children"]] == ["http:GET /sleepy.step"]
    assert [c["name"] for c in calls["children"][0]["children"]] == [
        "http:GET /sleepy.step.leaf"
    ] * 2
    assert logs(memory, "request handled") == []


@pytest.mark.asyncio
async def test_unsampled_slow_warnings_leave_out_the_full_record(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry, slow_ms=20, slow_sample_rate=0)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        for _ in range(3):
            async with client.get(f"{url}/sleepy?s=0.03") as response:
                assert response.status == 200
        async with client.get(f"{url}/work/1") as response:  # fast: far under 10 s
            assert response.status == 200
        assert await telemetry.flush(timeout=5)
    slow = logs(memory, "slow request")
    assert len(slow) == 3
    assert all("calls" not in r.attributes and "url.query" not in r.attributes for r in slow)


@pytest.mark.asyncio
async def test_an_exception_is_logged_once_with_its_fingerprint_and_reraised_unchanged(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)
    seen: list[BaseException] = []

    @web.middleware
    async def outer(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except Exception as exc:
            seen.append(exc)
            raise

    service.app.middlewares.insert(0, outer)  # outside ours: sees what ours re-raises
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        for n in (1, 2):
            async with client.get(f"{url}/boom/{n}") as response:
                assert response.status == 500
        assert await telemetry.flush(timeout=5)
    assert len(seen) == 2
    assert all(a is b for a, b in zip(seen, service.raised, strict=True))
    failed = logs(memory, "request failed")
    assert len(failed) == 2
    for record in failed:
        assert record.severity == 17
        assert record.attributes["exception.type"] == "LookupError"
        assert record.attributes["http.response.status_code"] == 500
        assert re.fullmatch(r"[0-9a-f]{40}", record.attributes["exception.fingerprint"])
    # the same error at the same place: one fingerprint for both ("order 1/2 missing")
    assert len({r.attributes["exception.fingerprint"] for r in failed}) == 1
    assert logs(memory, "request handled") == []
    errors = [tree.root.error for tree in profiles(memory)]
    assert [e["type"] if e else None for e in errors] == ["LookupError", "LookupError"]
    assert [tree.root.attributes["http.response.status_code"] for tree in profiles(memory)] == [
        500,
        500,
    ]


@pytest.mark.asyncio
async def test_http_exceptions_are_answers_not_errors(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        async with client.get(f"{url}/missing", headers={REQUEST_ID_HEADER: "r-404"}) as response:
            assert response.status == 404
            assert await response.text() == "no such thing"
            assert response.headers[REQUEST_ID_HEADER] == "r-404"
        async with client.get(f"{url}/no/such/route") as response:
            assert response.status == 404
        assert await telemetry.flush(timeout=5)
    assert logs(memory, "request failed") == []
    handled = [
        (r.attributes["http.route"], r.attributes["http.response.status_code"])
        for r in logs(memory, "request handled")
    ]
    assert handled == [("/missing", 404), ("unmatched", 404)]
    assert [(t.root.name, t.root.error) for t in profiles(memory)] == [
        ("http:GET /missing", None),
        ("http:GET unmatched", None),
    ]


# ---------------------------------------------------------------------------- metrics


def _duration_samples(families: list[Any]) -> dict[tuple[str, str], float]:
    (family,) = [f for f in families if f.name == "http_server_request_duration_s"]
    return {
        (s.labels["http_route"], s.labels["http_response_status_code"]): s.value
        for s in family.samples
        if s.name.endswith("_count")
    }


@pytest.mark.asyncio
async def test_metrics_endpoint_serves_openmetrics_or_text_by_accept_and_both_parse(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        for path in ("/work/1", "/work/2", "/missing", "/boom/3"):
            async with client.get(url + path):
                pass
        accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        async with client.get(f"{url}/metrics", headers={"Accept": accept}) as response:
            assert response.status == 200
            om_type = response.headers["Content-Type"]
            om_text = await response.text()
        async with client.get(f"{url}/metrics") as response:
            text_type = response.headers["Content-Type"]
            text = await response.text()
        assert await telemetry.flush(timeout=5)
    assert om_type == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert text_type == "text/plain; version=0.0.4; charset=utf-8"
    expected = {("/work/{n}", "200"): 2.0, ("/missing", "404"): 1.0, ("/boom/{n}", "500"): 1.0}
    om = list(openmetrics_parser.text_string_to_metric_families(om_text))
    assert _duration_samples(om) == expected
    plain = list(text_parser.text_string_to_metric_families(text))
    assert _duration_samples(plain) == expected
    assert {f.name for f in om} >= {"time_profiler", "http_server_request_duration_s"}
    # the scrapes themselves are neither logged nor profiled
    assert all(r.attributes.get("http.route") != "/metrics" for r in logs(memory))
    assert len(profiles(memory)) == 4


# ---------------------------------------------------------------------------- lifecycle


@pytest.mark.asyncio
async def test_startup_starts_the_pipeline_on_the_apps_loop_and_cleanup_delivers_the_rest(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)

    async def last_words(app: web.Application) -> None:
        telemetry.logger.info("cleaning up")

    service.app.on_cleanup.insert(0, last_words)
    assert not telemetry.running
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        assert telemetry.running
        assert telemetry._pipeline.on_pipeline_loop()  # the app's (this test's) loop
        async with client.get(f"{url}/flush") as response:
            assert await response.json() == {"flushed": True}
        # flush() inside the handler returned after "before flush" was delivered
        assert [r.body for r in logs(memory)][:1] == ["before flush"]
    assert not telemetry.running
    assert [r.body for r in logs(memory)][-1] == "cleaning up"
    assert service.app[INSTRUMENTATION_KEY] is service.instrumentation


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"slow_ms": 0}, "slow_ms: expected a positive number"),
        ({"slow_ms": True}, "slow_ms: expected a positive number"),
        ({"slow_sample_rate": 1.5}, "slow_sample_rate: expected a number from 0 to 1"),
        ({"metrics_path": "metrics"}, "metrics_path: expected a path starting with '/'"),
        ({"api_prefix": "/telemetry/"}, "api_prefix: expected a path starting with '/'"),
    ],
)
def test_setup_rejects_bad_options_naming_them(options: dict[str, Any], message: str) -> None:
    telemetry = Telemetry("t", handlers=[], install_signal_handlers=False)
    with pytest.raises(ValueError, match=message):
        setup(web.Application(), telemetry, **options)


def test_setup_twice_is_refused() -> None:
    telemetry = Telemetry("t", handlers=[], install_signal_handlers=False)
    app = web.Application()
    setup(app, telemetry)
    with pytest.raises(RuntimeError, match="already set up"):
        setup(app, telemetry)


@pytest.mark.asyncio
async def test_a_timeout_is_answered_504_and_recorded_as_504(
    telemetry: Telemetry, memory: MemoryHandler
) -> None:
    service = Service(telemetry)
    async with serve(service.app) as url, aiohttp.ClientSession() as client:
        async with client.get(f"{url}/late") as response:
            assert response.status == 504
        async with client.get(f"{url}/metrics") as response:
            families = list(text_parser.text_string_to_metric_families(await response.text()))
        assert await telemetry.flush(timeout=5)
    (failed,) = logs(memory, "request failed")
    assert failed.attributes["http.response.status_code"] == 504
    assert failed.attributes["exception.type"] == "TimeoutError"
    (tree,) = profiles(memory)
    assert tree.root.attributes["http.response.status_code"] == 504
    assert _duration_samples(families) == {("/late", "504"): 1.0}
