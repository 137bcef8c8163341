"""``pontem-async tree FILE...``: the profile lines of telemetry files merged into one call tree.

One profile line is one root call; a service writes thousands. This command folds them into one
tree per root name, so the question "where does ``handle`` spend its time" has one answer: per
node (a path from the root) the calls, total and self time, p50/p95 durations, errors and
unfinished calls (see :mod:`pontem_async._tree_model` for how self time and percentiles are
computed). Three outputs:

- ``text`` (default): the tree with aligned columns, biggest first; ``--min-percent`` hides the
  nodes under a share of the total (text only: the flame-graph formats keep every node, their
  viewers zoom instead);
- ``speedscope``: a file for https://www.speedscope.app (:mod:`pontem_async._tree_export`);
- ``collapsed``: Brendan Gregg's collapsed stacks for ``flamegraph.pl`` and friends.

Files are read like ``tail`` reads them (:mod:`pontem_async._jsonl_files`): directories and
rotated ``.gz`` sets, oldest first. Lines of other kinds are skipped silently; bad lines are
reported on stderr (``file:line``) and skipped; a profile line whose tree is malformed is
reported by trace id and skipped whole. A missing or unreadable FILE, or no profile at all to
show, makes the exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

from pontem_async._jsonl_files import TailError, expand, read_records
from pontem_async._progress import Progress
from pontem_async._tree_export import collapsed_lines, speedscope_document
from pontem_async._tree_model import SORT_KEYS, CallTree, InvalidProfile, TreeNode

__all__ = ["add_arguments", "run"]

_PROG = "pontem-async tree"
_PROGRESS_SECONDS = 0.5
_MAX_REPORTS = 20
_COLUMNS = ("calls", "total ms", "self ms", "p50 ms", "p95 ms", "errors", "unfinished")
_BOX = ("├─ ", "└─ ", "│  ", "   ")
_PLAIN = ("  ", "  ", "  ", "  ")


class _Stderr:
    """stderr shared by problem reports and the progress display (:mod:`pontem_async._progress`,
    drawn on a TTY only): a report first wipes the progress line, so messages never land after
    ``\\rpontem-async tree: 123 records read``."""

    def __init__(self, err: IO[str]) -> None:
        self.err = err
        self.bar = Progress(
            unit="records read", label=_PROG, stream=err, interval=_PROGRESS_SECONDS
        )

    def write(self, text: str) -> int:
        self.bar.clear()
        return self.err.write(text)

    def flush(self) -> None:
        self.err.flush()


def _records(args: argparse.Namespace, err: _Stderr) -> Iterator[dict[str, Any]]:
    """Every record of every FILE, oldest first, counted on the progress display."""
    advance = err.bar.advance
    for arg in args.files:
        for record in read_records(arg, cast("IO[str]", err), _PROG):
            yield record
            advance()
    err.bar.close()


def _readable(args: argparse.Namespace, err: _Stderr) -> bool:
    """Check every FILE before reading any: a typo or a file we may not read is reported (exit
    status 1) before a long read, not after it."""
    ok = True
    for arg in args.files:
        try:
            filesets = expand(arg)
        except TailError as exc:
            err.write(f"{_PROG}: {exc}\n")
            ok = False
            continue
        for fileset in filesets:
            current = [fileset.current] if fileset.current is not None else []
            for path in [*fileset.rotated, *current]:
                try:
                    open(path, "rb").close()  # only a probe
                except FileNotFoundError:  # rotated away meanwhile: the read finds it again
                    continue
                except OSError as exc:
                    err.write(f"{_PROG}: {path}: cannot read: {exc.strerror or exc}\n")
                    ok = False
    return ok


def _build(args: argparse.Namespace, err: _Stderr) -> CallTree:
    """The merged tree of every profile line; other kinds pass, malformed trees are reported
    (at most ``_MAX_REPORTS``, like bad lines) and left out whole."""
    tree = CallTree(args.root)
    invalid = 0
    for record in _records(args, err):
        if record.get("kind") != "profile":
            continue
        try:
            tree.add(record)
        except InvalidProfile as exc:
            invalid += 1
            if invalid <= _MAX_REPORTS:
                trace = record.get("traceId")
                which = f"trace {trace}" if isinstance(trace, str) else "a profile line"
                err.write(f"{_PROG}: {which}: invalid call tree skipped: {exc}\n")
            if invalid == _MAX_REPORTS:
                err.write(f"{_PROG}: further invalid call trees are skipped silently\n")
    return tree


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f}"


def _row(node: TreeNode) -> list[str]:
    pct = node.percentiles(50, 95)
    mark = "~" if node.estimated else ""
    p50, p95 = (f"{mark}{_ms(pct[0])}", f"{mark}{_ms(pct[1])}") if pct else ("-", "-")
    return [
        str(node.calls),
        _ms(node.total_ns),
        _ms(node.self_ns),
        p50,
        p95,
        str(node.errors),
        str(node.unfinished),
    ]


def _box_drawing(out: IO[str]) -> bool:
    try:
        "".join(_BOX).encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError, AttributeError):
        return False
    return True


def render_text(tree: CallTree, sort: str, min_percent: float, box: bool = True) -> list[str]:
    """The tree as aligned text lines: a header, then one line per node shown."""
    grand = tree.total_ns
    glyphs = _BOX if box else _PLAIN
    rows: list[tuple[str, list[str]]] = []

    def shown(node: TreeNode) -> bool:
        return min_percent <= 0 or node.total_ns * 100 >= min_percent * grand

    stack: list[tuple[TreeNode, str, str]] = [
        (root, "", "") for root in reversed(tree.ordered(sort)) if shown(root)
    ]
    while stack:  # not recursion: trees can be 500 levels deep
        node, lead, branch = stack.pop()
        rows.append((lead + branch + node.label, _row(node)))
        visible = [child for child in node.ordered(sort) if shown(child)]
        inner = lead + (glyphs[2] if branch == glyphs[0] else glyphs[3] if branch else "")
        last = len(visible) - 1
        stack.extend(
            (child, inner, glyphs[1] if i == last else glyphs[0])
            for i, child in reversed(list(enumerate(visible)))
        )
    hidden = _count(tree.roots.values()) - len(rows)
    header = ("method", list(_COLUMNS))
    width = max(len(name) for name, _ in [header, *rows])
    widths = [max(len(cells[i]) for _, cells in [header, *rows]) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join([name.ljust(width), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))])
        for name, cells in [header, *rows]
    ]
    if hidden:
        lines.append(f"({hidden} node{'s' if hidden != 1 else ''} under {min_percent:g}% hidden)")
    return lines


def _count(nodes: Iterable[TreeNode]) -> int:
    """How many nodes ``nodes`` and their descendants are."""
    stack, count = list(nodes), 0
    while stack:
        count += 1
        stack.extend(stack.pop().children.values())
    return count


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``tree``'s arguments on its subparser."""
    parser.description = (
        "Merge the profile records of telemetry JSONL files (directories and rotated .gz sets "
        "too) into one call tree per root: calls, total and self time, p50/p95, errors."
    )
    add = parser.add_argument
    add("files", nargs="+", metavar="FILE", help="JSONL file (.gz too), base name or directory")
    add(
        "--format",
        choices=["text", "speedscope", "collapsed"],
        default="text",
        help="text tree (default), speedscope JSON, or collapsed stacks (flamegraph.pl)",
    )
    add("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add(
        "--sort",
        choices=sorted(SORT_KEYS),
        default="total",
        help="order of siblings: total, self, calls (biggest first) or name",
    )
    add(
        "--min-percent",
        type=_percent,
        default=0.0,
        metavar="P",
        help="text: hide nodes under P%% of the total time of all roots shown",
    )
    add(
        "--root",
        action="append",
        metavar="NAME",
        help="only the roots with this method path (repeatable)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print or write the merged tree; the exit status is 1 when there was nothing to show or a
    FILE could not be read."""
    err = _Stderr(sys.stderr)
    if not _readable(args, err):
        return 1
    tree = _build(args, err)
    if not tree.roots:
        which = f" with root {' or '.join(args.root)}" if args.root else ""
        err.write(f"{_PROG}: no profile records{which} in {' '.join(args.files)}\n")
        return 1
    roots = tree.ordered(args.sort)
    if args.format == "speedscope":
        data = speedscope_document(roots, args.sort, " ".join(args.files))
        return _emit(args.output, data)
    if args.format == "collapsed":
        text = collapsed_lines(roots, args.sort)
    else:
        box = _box_drawing(sys.stdout) if args.output in (None, "-") else True
        text = render_text(tree, args.sort, args.min_percent, box)
    return _emit(args.output, "".join(line + "\n" for line in text).encode("utf-8"))


def _emit(output: str | None, data: bytes) -> int:
    if output in (None, "-"):
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return 0
    try:
        with open(str(output), "wb") as file:
            file.write(data)
    except OSError as exc:
        sys.stderr.write(f"{_PROG}: {output}: cannot write: {exc.strerror or exc}\n")
        return 1
    return 0
