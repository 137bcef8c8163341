"""The demo's aiohttp service: four routes whose handlers make profiled calls, log, and fail.

The same shape as ``examples/aiohttp_service.py`` (which is not installed with the package): a
shop with ``/checkout``, ``/cart``, ``/search`` and ``/users/{id}``. What a request does follows
from the request itself, so the demo's client can ask for a realistic mix:

- ``/checkout?items=N``: prices N items, reserves stock (more than 8 items: the inventory
  service times out, an unhandled ``TimeoutError``, answered 500) and charges the card;
- ``/cart``: loads the cart from the "database";
- ``/search?q=TEXT``: three index shards queried concurrently; queries longer than 12
  characters are slow (over the slow-request threshold);
- ``/users/{id}``: a user; ids divisible by 13 do not exist (``HTTPNotFound``, 404).

Every call sleeps a few milliseconds instead of doing I/O, so the demo needs nothing but itself.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

import pontem_async as pa
from pontem_async.integrations.aiohttp import setup

__all__ = ["SLOW_QUERY_LENGTH", "make_app"]

SLOW_QUERY_LENGTH = 12
MAX_ITEMS_IN_STOCK = 8
log = pa.get_logger("shop")


class Database:
    @pa.profile
    async def query(self, table: str, key: object) -> dict[str, object]:
        await asyncio.sleep(0.002)
        return {"table": table, "key": key}


class Inventory:
    @pa.profile
    async def reserve(self, items: int) -> None:
        await asyncio.sleep(0.001 * items)
        if items > MAX_ITEMS_IN_STOCK:
            raise TimeoutError(f"inventory service timed out reserving {items} items")


class Payments:
    @pa.profile
    async def charge(self, cents: int) -> str:
        await asyncio.sleep(0.004)
        return f"ch_{cents}"


class Search:
    @pa.profile
    async def shard(self, number: int, query: str) -> list[str]:
        slow = len(query) > SLOW_QUERY_LENGTH
        await asyncio.sleep(0.2 if slow and number == 2 else 0.003)
        return [f"{query}-{number}"]


db, inventory, payments, search = Database(), Inventory(), Payments(), Search()


@pa.profile
async def price(items: int) -> int:
    rows = await asyncio.gather(*(db.query("prices", n) for n in range(min(items, 3))))
    return 499 * items + len(rows)


async def checkout(request: web.Request) -> web.Response:
    items = int(request.query.get("items", "1"))
    total = await price(items)
    await inventory.reserve(items)
    charge = await payments.charge(total)
    log.info("order placed", items=items, total_cents=total)
    return web.json_response({"charge": charge, "total_cents": total})


async def cart(request: web.Request) -> web.Response:
    row = await db.query("carts", request.query.get("session", "anonymous"))
    return web.json_response(row)


async def search_route(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    shards = await asyncio.gather(*(search.shard(n, query) for n in range(3)))
    hits = [hit for shard in shards for hit in shard]
    log.debug("search done", hits=len(hits))
    return web.json_response({"hits": hits})


async def user(request: web.Request) -> web.Response:
    user_id = int(request.match_info["id"])
    if user_id % 13 == 0:
        log.info("unknown user", user_id=user_id)
        raise web.HTTPNotFound(text=f"user {user_id} not found")
    return web.json_response(await db.query("users", user_id))


def make_app(telemetry: pa.Telemetry | None = None, slow_ms: float = 150.0) -> web.Application:
    """The shop, instrumented with :func:`pontem_async.integrations.aiohttp.setup`."""
    app = web.Application()
    app.router.add_get("/checkout", checkout)
    app.router.add_get("/cart", cart)
    app.router.add_get("/search", search_route)
    app.router.add_get(r"/users/{id:\d+}", user)
    setup(app, telemetry, slow_ms=slow_ms)
    return app
