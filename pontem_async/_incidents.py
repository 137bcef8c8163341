"""``pontem-async incidents URL``: the top recurring errors in an ``SQLHandler`` table.

Prints one line per fingerprint, most frequent first: how often it happened in the window
(``--since``, 24 hours by default), when it was first and last seen, the service and an example
message (the newest)::

    COUNT  FIRST SEEN (UTC)     LAST SEEN (UTC)      SERVICE   FINGERPRINT   MESSAGE
       12  2025-05-01 10:00:03  2025-05-01 11:42:19  checkout  3f2a9c1b0d4e  payment declined

``--json`` prints the same as a JSON array (full fingerprints, ISO 8601 timestamps) for
scripts. The query itself is :func:`pontem_async.handlers.sql.top_incidents`. A database that
cannot be queried (down, no such table, no driver) is reported on stderr, password masked,
with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from pontem_async.handlers.sql import Incident

__all__ = ["add_arguments", "parse_since", "render_table", "run"]

_PROG = "pontem-async incidents"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FINGERPRINT_SHOWN = 12


def parse_since(text: str) -> datetime.timedelta | datetime.datetime | None:
    """``--since``: a duration back from now (``90s``, ``30m``, ``24h``, ``7d``, ``2w``, or
    combined: ``1h30m``), an ISO 8601 time (UTC unless it says otherwise), or ``all``."""
    value = text.strip()
    if value.lower() == "all":
        return None
    parts = _DURATION.findall(value)
    if parts and "".join(f"{n}{u}" for n, u in parts) == re.sub(r"\s+", "", value):
        return datetime.timedelta(
            seconds=sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)
        )
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration (30m, 24h, 7d), an ISO 8601 time or 'all', got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``incidents``' arguments on its subparser."""
    parser.description = (
        "List the most frequent errors an SQLHandler wrote, grouped by fingerprint: count, "
        "first and last seen, service and the newest message."
    )
    add = parser.add_argument
    add("url", metavar="URL", help="database URL, e.g. sqlite+aiosqlite:///incidents.db")
    add(
        "--since",
        type=parse_since,
        default=datetime.timedelta(hours=24),
        help="time window: a duration (30m, 24h, 7d), an ISO time, or 'all' (default: 24h)",
    )
    add("--service", metavar="S", help="only errors of this service")
    add("--limit", type=_positive, default=20, metavar="N", help="most groups shown (20)")
    add("--table", default="error_logs", help="table name (default: error_logs)")
    add("--json", action="store_true", help="print a JSON array instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Query and print; exit status 1 when the database could not be queried."""
    try:
        from pontem_async.handlers.sql import top_incidents
    except ImportError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 1
    from pontem_async.handlers._sql_url import masked, parse_url, scrub

    try:
        url = parse_url(args.url, what="URL")
    except ValueError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        incidents = asyncio.run(
            top_incidents(
                url, since=args.since, service=args.service, limit=args.limit, table=args.table
            )
        )
    except Exception as exc:  # the database's problem, not a crash of ours
        cause = getattr(exc, "orig", None) or exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        print(
            f"{_PROG}: cannot query table {args.table!r} at {masked(url)}: "
            f"{scrub(f'{type(cause).__name__}: {reason}', url)}",
            file=sys.stderr,
        )
        return 1
    out = sys.stdout
    if args.json:
        data = [incident.as_json() for incident in incidents]
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif not incidents:
        out.write("no incidents in this window\n")
    else:
        width = shutil.get_terminal_size((120, 24)).columns
        out.write(render_table(incidents, width=width))
    return 0


def render_table(incidents: Sequence[Incident], *, width: int = 120) -> str:
    """Aligned columns; the message is cut to fit ``width`` characters (at least 20 shown)."""
    header = ("COUNT", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "SERVICE", "FINGERPRINT", "MESSAGE")
    rows: list[tuple[str, ...]] = [
        (
            str(i.count),
            _when(i.first_seen),
            _when(i.last_seen),
            i.service or "-",
            i.fingerprint[:_FINGERPRINT_SHOWN],
            _one_line(i.message),
        )
        for i in incidents
    ]
    widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header) - 1)]
    used = sum(widths) + 2 * len(widths)
    room = max(20, width - used)
    lines = []
    for row in [header, *rows]:
        cells = [row[0].rjust(widths[0])]
        cells.extend(cell.ljust(w) for cell, w in zip(row[1:-1], widths[1:], strict=True))
        message = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
        lines.append("  ".join([*cells, message]).rstrip())
    return "\n".join(lines) + "\n"


def _when(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _one_line(message: Any) -> str:
    text = "" if message is None else str(message)
    return " ".join(text.split())
