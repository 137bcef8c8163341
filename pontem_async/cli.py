"""The ``pontem-async`` command (also ``python -m pontem_async``).

Subcommands live in their own modules; this one only parses arguments and dispatches:

- ``demo``: the main job: the demo aiohttp service on the embedded default, a burst of
  requests, a summary (``pontem_async._demo``);
- ``check-config FILE``: validate a configuration and print it resolved, secrets redacted
  (``pontem_async.dictconfig``);
- ``tail FILE...``: pretty-print JSONL telemetry files, rotated ``.gz`` files included
  (``pontem_async._tail``);
- ``tree FILE...``: merge the profile records of JSONL files into one call tree, as text,
  speedscope JSON or collapsed stacks (``pontem_async._tree``);
- ``incidents URL``: the top recurring errors an ``SQLHandler`` wrote, grouped by fingerprint
  (``pontem_async._incidents``);
- ``consume [URL] --exchange NAME``: receive what ``RabbitMQHandler`` publishes, as console
  lines or appended to a JSONL file (``pontem_async._consume_cli``);
- ``receive-otlp --out DIR``: a local OTLP/HTTP JSON receiver writing each request it gets
  as a JSON line (``pontem_async._receive_otlp``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pontem-async", description="asyncio-native telemetry: tools and demo"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from pontem_async import _consume_cli, _demo, _incidents, _tail, _tree, dictconfig

    _demo.add_arguments(
        sub.add_parser(
            "demo", help="serve an instrumented aiohttp demo, drive a burst at it, summarise"
        )
    )
    dictconfig.add_check_config_arguments(
        sub.add_parser("check-config", help="validate a config file and print it resolved")
    )
    _tail.add_arguments(
        sub.add_parser("tail", help="pretty-print JSONL telemetry files (.gz included)")
    )
    _tree.add_arguments(
        sub.add_parser("tree", help="merge profile records into one call tree (text, flame graph)")
    )
    from pontem_async import _receive_otlp

    _receive_otlp.add_arguments(
        sub.add_parser("receive-otlp", help="receive OTLP/HTTP JSON locally, write it as JSONL")
    )
    _incidents.add_arguments(
        sub.add_parser("incidents", help="top recurring errors in an SQL table, by fingerprint")
    )
    _consume_cli.add_arguments(
        sub.add_parser("consume", help="print or archive the records of a RabbitMQ exchange")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pontem-async tail x | head`
        sys.stderr.close()
        return 0
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
