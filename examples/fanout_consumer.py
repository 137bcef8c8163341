"""Consumers of a fanout exchange: each binds its own queue and receives every record.

    python examples/fanout_consumer.py archive archive.jsonl   # append everything as JSONL
    python examples/fanout_consumer.py console                  # a live console view
    python examples/fanout_consumer.py alert                    # act on error logs only

An archiver uses a named durable queue (``--queue``), so records published while it is down
wait for it; the console and the alerting worker use exclusive queues that live only while
they run. Duplicates (at-least-once delivery) are skipped by message id in ``pa.consume``.
Stops on Ctrl-C, or after ``--count`` records.
"""

import argparse
import asyncio
import os
import sys
from typing import Any

import orjson

import pontem_async as pa
from pontem_async.encoding.console import render_line

ERROR = 17  # OTel severity number of ERROR


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["archive", "console", "alert"])
    parser.add_argument("path", nargs="?", help="archive: the JSONL file to append to")
    parser.add_argument("--exchange", default="telemetry")
    parser.add_argument("--queue", help="a durable queue name (archive)")
    parser.add_argument("--count", type=int, help="stop after this many records")
    args = parser.parse_args()
    url = os.environ.get("PONTEM_AMQP_URL", "amqp://guest:guest@127.0.0.1/")

    handle = (
        archiver(args.path)
        if args.role == "archive"
        else {"console": console, "alert": alert}[args.role]
    )
    async with pa.consume(url, args.exchange, args.queue) as records:
        print(f"{args.role}: ready on queue {records.queue}", file=sys.stderr, flush=True)
        seen = 0
        async for record in records:
            handle(record)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    print(f"{args.role}: {seen} records, {records.duplicates} duplicates skipped", file=sys.stderr)


def archiver(path: str | None) -> Any:
    if path is None:
        sys.exit("archive: give the file to append to")
    out = open(path, "ab")  # noqa: SIM115 - lives as long as the process

    def write(record: dict[str, Any]) -> None:
        out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        out.flush()

    return write


def console(record: dict[str, Any]) -> None:
    print(render_line(record), flush=True)


def alert(record: dict[str, Any]) -> None:
    if record.get("kind") == "log" and record.get("severityNumber", 0) >= ERROR:
        order = record["attributes"].get("order_id")
        print(f"ALERT {record['body']} (order {order})", flush=True)


asyncio.run(main())
