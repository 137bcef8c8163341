"""A producer service publishing its telemetry to a RabbitMQ fanout exchange.

Every consumer bound to the exchange (see fanout_consumer.py: an archiver, a live console, an
alerting worker) receives every record. The broker may be down when this starts: records are
buffered and published once it answers (at-least-once; consumers drop duplicates by message id).

    PONTEM_AMQP_URL=amqp://guest:guest@127.0.0.1/ python examples/fanout_producer.py
    python examples/fanout_producer.py --exchange telemetry --orders 200
"""

import argparse
import asyncio
import os

import pontem_async as pa
from pontem_async.handlers import RabbitMQHandler, StreamHandler


@pa.profile
async def place_order(order_id: int) -> None:
    log = pa.get_logger("orders")
    with pa.bind_context(order_id=order_id):
        await asyncio.sleep(0)
        if order_id % 10 == 9:
            log.error("payment declined", amount_cents=1000 + order_id)
            return
        log.info("order placed", amount_cents=1000 + order_id)
        pa.metrics.count("orders_placed")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", default="telemetry")
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()
    url = os.environ.get("PONTEM_AMQP_URL", "amqp://guest:guest@127.0.0.1/")
    telemetry = pa.init(
        service_name="checkout",
        handlers=[
            RabbitMQHandler(url, args.exchange, name="fanout", compression="gzip"),
            StreamHandler(name="console", level="error", kinds=["log"]),
        ],
        flush_interval=0.1,
    )
    for order_id in range(args.orders):
        await place_order(order_id)
    confirmed = await telemetry.flush(timeout=30)  # True once the broker confirmed everything
    stats = telemetry.stats()["fanout"]["handler"]
    print(
        f"published {stats['published_records']} records in {stats['published_messages']} "
        f"messages; confirmed: {confirmed}"
    )
    await telemetry.shutdown()


asyncio.run(main())
