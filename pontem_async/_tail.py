"""``pontem-async tail FILE...``: telemetry JSONL files read back as console lines.

Why a command of our own instead of ``zcat | jq``: the file handler rotates ``records.jsonl`` into
``records.jsonl.1.gz``, ``.2.gz``, ... (``.1`` the newest), so one stream of records is spread
over several files, some compressed. Here a FILE that is a directory, or a base name with rotated
siblings, stands for that whole set in chronological order (highest number first, the current
file last), and ``--follow`` keeps following the current file by name across rotation and
truncation, like ``tail -F``.

A telemetry file can hold a half-written last line or a foreign line: each bad line is reported
on stderr as ``file:line`` and skipped, never fatal. A FILE that does not exist is an error
(exit status 1) reported before anything is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pontem_async._follow import _Follower
from pontem_async._jsonl_files import (
    FileSet,
    Line,
    TailError,
    _lines,
    _Reports,
    expand,
    read_records,
)
from pontem_async.encoding.console import line_kind, line_severity, render_line, use_color
from pontem_async.handlers.base import ALL_KINDS
from pontem_async.records import Level

__all__ = ["FileSet", "TailError", "add_arguments", "expand", "read_records", "run"]

_POLL_SECONDS = 0.1
_PROG = "pontem-async tail"


def _history(
    filesets: Iterable[FileSet], reports: _Reports, followers: list[_Follower] | None
) -> Iterator[tuple[str, Line]]:
    """Every line of ``filesets``, oldest first. With ``followers`` (``--follow``) each live
    file is read through a new follower, appended there to follow the file afterwards."""
    for fileset in filesets:
        for path in fileset.rotated:
            yield from ((path, line) for line in _lines(path, reports))
        current = fileset.current
        if current is None:
            continue
        if followers is not None and not current.endswith(".gz"):
            followers.append(_Follower(current, reports))
            yield from followers[-1].poll()
        elif os.path.exists(current):
            yield from ((current, line) for line in _lines(current, reports))



def _matcher(args: argparse.Namespace) -> Callable[[dict[str, Any]], bool]:
    """``--kind``, ``--level`` and ``--grep`` as one predicate. Severity and body exist only
    on logs, so with ``--level`` or ``--grep`` records of other kinds are left out."""
    kinds, level, grep = frozenset(args.kind or ()), args.level, args.grep

    def accepts(data: dict[str, Any]) -> bool:
        if kinds and line_kind(data) not in kinds:
            return False
        if level is not None and (line_severity(data) or 0) < level:
            return False
        body = data.get("body")
        return grep is None or (body is not None and grep in str(body))

    return accepts


def _level(text: str) -> int:
    """``--level``: a name (``info``, ``warn``, ``warning``, ...) or an OTel number 1-24, kept
    exact (``10`` is stricter than ``info``)."""
    value: int | str = int(text) if text.strip().isdigit() else text
    try:
        parsed = Level.parse(value)
    except ValueError:
        names = ", ".join(level.name.lower() for level in Level)
        raise argparse.ArgumentTypeError(
            f"expected one of {names} or a number 1-24, got {text!r}"
        ) from None
    return value if isinstance(value, int) else int(parsed)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of records >= 0, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``tail``'s arguments on its subparser."""
    parser.description = (
        "Print telemetry JSONL files as console lines. A directory, or a base name with rotated "
        "siblings (records.jsonl.2.gz, records.jsonl.1.gz, ...), is read as one stream, oldest "
        "first."
    )
    add = parser.add_argument
    add("files", nargs="+", metavar="FILE", help="JSONL file (.gz too), base name or directory")
    add("-n", "--lines", type=_count, metavar="N", help="only the last N matching records")
    add("-f", "--follow", action="store_true", help="follow live files across rotations")
    add("--kind", action="append", choices=sorted(ALL_KINDS), help="only this kind (repeatable)")
    add("--level", type=_level, help="only logs this severe or worse (info, warn, ... or 1-24)")
    add("--grep", metavar="TEXT", help="only logs whose body contains TEXT")
    add("--json", action="store_true", help="print matching JSON lines unchanged")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the records of ``args.files``; the exit status is 1 if a file could not be read."""
    out, reports = sys.stdout, _Reports(sys.stderr, _PROG)
    filesets: list[FileSet] = []
    for arg in args.files:
        try:
            filesets.extend(expand(arg))
        except TailError as exc:
            reports.problem(str(exc), fatal=True)
    if reports.unreadable:
        return 1
    accepts, color = _matcher(args), not args.json and use_color(out)

    def show(lines: Iterable[tuple[str, Line]]) -> Iterator[str]:
        for path, line in lines:
            data = reports.parse(path, line)
            if data is not None and accepts(data):
                yield (line[1].decode() if args.json else render_line(data, color=color)) + "\n"

    followers: list[_Follower] = []
    history = show(_history(filesets, reports, followers if args.follow else None))
    out.writelines(history if args.lines is None else deque(history, maxlen=args.lines))
    try:
        out.flush()
        busy = False
        while followers:
            if not busy:  # lines keep coming: poll again at once, fewer rotations to catch up
                time.sleep(_POLL_SECONDS)
            lines = [line for follower in followers for line in follower.poll()]
            busy = bool(lines)
            out.writelines(show(lines))
            out.flush()
    except KeyboardInterrupt:  # the normal way to stop following
        pass
    finally:
        for follower in followers:
            follower.close()
    return 1 if reports.unreadable else 0
