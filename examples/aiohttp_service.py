"""An aiohttp service instrumented by pontem-async: one call tree, one log and one latency sample
per request, the request id in every log, /metrics, and the telemetry API under /telemetry.

    python examples/aiohttp_service.py             # serves on 127.0.0.1:8080 until Ctrl-C
    python examples/aiohttp_service.py --port 0    # any free port (printed)

    curl -H 'X-Request-ID: r-1' 127.0.0.1:8080/orders/42
    curl 127.0.0.1:8080/metrics
    curl -X POST 127.0.0.1:8080/telemetry/run/start
    curl -X POST 127.0.0.1:8080/telemetry/event -d '{"type": "deploy", "data": {"v": "1.2"}}'

Records land in ./telemetry/records.jsonl (warnings and errors are echoed on stderr); look at
them with ``pontem-async tail telemetry`` and ``pontem-async tree telemetry``.
"""

import argparse
import asyncio
import contextlib
import signal

from aiohttp import web

import pontem_async as pa
from pontem_async.integrations.aiohttp import setup

log = pa.get_logger("orders")


class OrderStore:
    """Stands in for a database: every method is profiled, so it shows in the call trees."""

    @pa.profile
    async def load(self, order_id: int) -> dict[str, object]:
        await asyncio.sleep(0.002)
        if order_id % 10 == 0:
            raise LookupError(f"order {order_id} is archived")
        return {"id": order_id, "items": order_id % 4 + 1}

    @pa.profile
    async def lines(self, order_id: int) -> list[dict[str, object]]:
        await asyncio.sleep(0.001)
        return [{"sku": f"sku-{order_id}-{n}"} for n in range(3)]


store = OrderStore()


async def get_order(request: web.Request) -> web.Response:
    order_id = int(request.match_info["order_id"])
    if order_id == 0:
        raise web.HTTPNotFound(text="no order 0")  # an answer, not an error
    order, lines = await asyncio.gather(store.load(order_id), store.lines(order_id))
    log.info("order served", order_id=order_id, lines=len(lines))  # carries request_id
    return web.json_response({**order, "lines": lines})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app() -> web.Application:
    """The application, instrumented: importable for tests (aiohttp's TestServer)."""
    app = web.Application()
    app.router.add_get(r"/orders/{order_id:\d+}", get_order)
    app.router.add_get("/health", health)
    setup(app, slow_ms=250)  # the default telemetry; starts/stops with the app
    return app


async def main(host: str, port: int) -> None:
    pa.init(service_name="orders")  # on this loop: the pipeline runs here
    runner = web.AppRunner(make_app())
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        print(f"serving on http://{host}:{bound} (Ctrl-C to stop)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still works
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()  # the app's cleanup shuts the telemetry down: nothing lost
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port))
