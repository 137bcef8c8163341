"""``pontem-async consume [URL] --exchange telemetry``: watch or archive a fan-out exchange.

Binds its own queue to the exchange (exclusive unless ``--queue`` names a durable one) and
prints every record as a console line, the same look as ``pontem-async tail``; with ``--out
FILE`` it appends the records to FILE as JSONL instead (an archiver), flushed record by record
before the message is acknowledged, so a crash loses nothing the broker was told is done.
Duplicates that at-least-once delivery can produce are skipped by ``message_id``
(``pa.consume``).

The URL defaults to ``PONTEM_AMQP_URL``, then to the local broker; prefer the environment for a
password (a command line is visible to every user of the machine). Messages to stderr show the
URL with its password masked. Stops on Ctrl-C, or after ``--count`` records.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import IO

import orjson

from pontem_async._consume import Consumer, consume
from pontem_async._progress import progress
from pontem_async.encoding.console import render_line, use_color
from pontem_async.handlers._amqp_url import check_amqp_url, mask_url
from pontem_async.settings import PONTEM_AMQP_URL

__all__ = ["add_arguments", "run"]

_PROG = "pontem-async consume"
_DEFAULT_URL = "amqp://guest:guest@127.0.0.1/"


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of records >= 1, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``consume``'s arguments on its subparser."""
    parser.description = (
        "Receive the records RabbitMQHandler publishes: print them as console lines, or "
        "append them to a JSONL file with --out. Each consumer gets every record (fan-out)."
    )
    add = parser.add_argument
    add("url", nargs="?", metavar="URL", help=f"amqp:// URL (default: ${PONTEM_AMQP_URL}, else "
        f"{_DEFAULT_URL})")  # fmt: skip
    add("--exchange", default="telemetry", help="exchange to bind to (default: telemetry)")
    add(
        "--exchange-type",
        choices=("fanout", "topic", "direct"),
        default="fanout",
        help="type the exchange was declared with (default: fanout)",
    )
    add("--queue", help="a durable queue name (default: an exclusive queue of our own)")
    add(
        "--binding",
        action="append",
        metavar="KEY",
        help="routing key to bind, e.g. 'log.*.error' on a topic exchange (repeatable)",
    )
    add("--out", metavar="FILE", help="append records to FILE as JSONL instead of printing")
    add("--json", action="store_true", help="print JSON lines instead of console lines")
    add("--count", type=_count, metavar="N", help="stop after N records")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Consume until Ctrl-C or ``--count``; exit status 1 when the broker cannot be used."""
    url = args.url or os.environ.get(PONTEM_AMQP_URL, "").strip() or _DEFAULT_URL
    try:
        check_amqp_url(url, argument="URL")
    except (TypeError, ValueError) as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        out = None if args.out is None else open(args.out, "ab")  # noqa: SIM115
    except OSError as exc:
        print(f"{_PROG}: error: cannot open {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_consume(url, args, out))
    except KeyboardInterrupt:
        return 0
    finally:
        if out is not None:
            out.close()


async def _consume(url: str, args: argparse.Namespace, out: IO[bytes] | None) -> int:
    consumer = consume(
        url,
        args.exchange,
        args.queue,
        exchange_type=args.exchange_type,
        bindings=args.binding,
    )
    try:
        await consumer.start()
    except (ConnectionError, OSError) as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a broker refusal (exchange of another type, ...)
        print(f"{_PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        await consumer.close()
        return 1
    try:
        target = f"appending to {args.out}" if out is not None else "printing"
        print(
            f"{_PROG}: bound queue {consumer.queue} to exchange {args.exchange!r} on "
            f"{mask_url(url)}; {target}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        color = out is None and not args.json and use_color(sys.stdout)
        await _loop(consumer, args, out, color)
    finally:
        await consumer.close()
        if consumer.duplicates:
            print(
                f"{_PROG}: skipped {consumer.duplicates} duplicate message(s)",
                file=sys.stderr,
            )
    return 0


async def _loop(
    consumer: Consumer, args: argparse.Namespace, out: IO[bytes] | None, color: bool
) -> None:
    received = 0
    # With --out, records go to the file: show how many on the terminal (stderr, TTY only).
    with progress(total=args.count, unit="records", label=_PROG) as bar:
        async for record in consumer:
            received += 1
            if out is not None:
                out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
                out.flush()
                bar.advance()
            elif args.json:
                sys.stdout.write(orjson.dumps(record).decode() + "\n")
            else:
                sys.stdout.write(render_line(record, color=color) + "\n")
            if out is None:
                sys.stdout.flush()
            if args.count is not None and received >= args.count:
                break
