"""The ``pontem-async`` command (also ``python -m pontem_async``).

Subcommands live in their own modules; this one only parses arguments and dispatches:

- ``demo``: the main job on the embedded default (``pontem_async._demo``);
- ``check-config FILE``: validate a configuration and print it resolved, secrets redacted
  (``pontem_async.dictconfig``);
- ``tail FILE...``: pretty-print JSONL telemetry files, rotated ``.gz`` files included
  (``pontem_async._tail``);
- ``tree FILE...``: merge the profile records of JSONL files into one call tree, as text,
  speedscope JSON or collapsed stacks (``pontem_async._tree``).
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

    from pontem_async import _demo, _tail, _tree, dictconfig

    _demo.add_arguments(
        sub.add_parser("demo", help="run the demo workload on the embedded default (./telemetry)")
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
