"""Error logs in a SQL table, then "what keeps failing?" — with nothing but SQLite.

An asyncio service logs its errors through ``SQLHandler`` (the embedded default:
``sqlite+aiosqlite:///incidents.db`` in the working directory); afterwards the top recurring
incidents are read back, grouped by fingerprint. Same query from the command line:
``pontem-async incidents sqlite+aiosqlite:///incidents.db``.

    pip install 'pontem-async[sql]'
    python examples/incidents_sqlite.py
"""

import asyncio

import pontem_async as pa
from pontem_async.handlers.sql import SQLHandler, top_incidents

URL = "sqlite+aiosqlite:///incidents.db"


def load_price(sku: str) -> float:
    prices = {"apple": 0.5}
    return prices[sku]  # KeyError for unknown products


def parse_quantity(text: str) -> int:
    return int(text)  # ValueError for "two", "many", ...


async def handle(order_id: int, sku: str, quantity: str) -> None:
    log = pa.get_logger("orders").bind(request_id=f"req-{order_id}", route="/orders")
    try:
        total = load_price(sku) * parse_quantity(quantity)
        log.info("order priced", total=total)  # below the handler's level: not stored
    except KeyError:
        log.exception("unknown product", order_id=order_id)
    except ValueError:
        log.exception("bad quantity", order_id=order_id)


async def main() -> None:
    telemetry = pa.init("shop", handlers=[SQLHandler(URL)], install_signal_handlers=False)
    orders = [
        (1, "apple", "3"),
        (2, "pear", "1"),
        (3, "apple", "two"),
        (4, "pear", "2"),
        (5, "apple", "two"),
        (6, "pear", "5"),
    ]
    await asyncio.gather(*(handle(*order) for order in orders))
    await telemetry.shutdown()

    for incident in await top_incidents(URL, since=None):
        print(
            f"{incident.count} x {incident.message} [{incident.service}] "
            f"fingerprint={incident.fingerprint[:12]} last seen {incident.last_seen:%H:%M:%S}"
        )


if __name__ == "__main__":
    asyncio.run(main())
