"""The merged call tree as flame-graph input: speedscope JSON and collapsed stacks.

Both describe the same picture. A node's width is its *span*: its self time plus the spans of
its children. Without concurrency the span is the node's total time; when children ran
concurrently (``gather``) their times add up to more than the parent's wall time, and the span
grows so that every child still fits inside its parent, as a flame graph requires.

Every walk uses a stack, not recursion: a tree can be 500 levels deep.

- **speedscope** (https://www.speedscope.app, ``file-format-schema.json``): one *evented* profile
  per root name, ``unit`` nanoseconds, so the profile picker switches between entry points (in
  ``--sort`` order; the first is shown on load). Within a profile each node opens, its children
  follow one after the other (in ``--sort`` order), then its self time, then it closes: the
  aggregated tree laid out like speedscope's own "left heavy" view. ``at`` values are integers,
  exact in a JSON double up to 104 days of total time. Frames are shared by label (``query``
  under two parents is one frame), so speedscope's sandwich view sums a method over its callers.
- **collapsed** (Brendan Gregg's ``stackcollapse`` output, read by ``flamegraph.pl``,
  speedscope, inferno): one ``root;child;grandchild <self µs>`` line per node, in tree order,
  the self time rounded to whole microseconds; nodes that round to 0 are left out, as their
  stacks would have no width. ``;`` in a name would split the frame, so it is written as ``,``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from pontem_async import __version__
from pontem_async._tree_model import TreeNode

__all__ = ["SPEEDSCOPE_SCHEMA", "collapsed_lines", "speedscope_document"]

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def _events(root: TreeNode, sort: str, frame: dict[str, int]) -> tuple[list[dict[str, Any]], int]:
    """Open/close events of one root's tree laid out from 0, children before self time, and
    where the root closes (its span)."""
    events: list[dict[str, Any]] = []
    at = 0
    stack: list[tuple[TreeNode, bool]] = [(root, False)]
    while stack:
        node, opened = stack.pop()
        index = frame.setdefault(node.label, len(frame))
        if opened:
            at += node.self_ns
            events.append({"type": "C", "frame": index, "at": at})
            continue
        events.append({"type": "O", "frame": index, "at": at})
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.ordered(sort)))
    return events, at


def speedscope_document(roots: Iterable[TreeNode], sort: str, name: str) -> bytes:
    """A speedscope file of ``roots`` (each its own evented profile), encoded."""
    frame: dict[str, int] = {}
    profiles: list[dict[str, Any]] = []
    for root in roots:
        events, end = _events(root, sort, frame)
        profiles.append(
            {
                "type": "evented",
                "name": root.name,
                "unit": "nanoseconds",
                "startValue": 0,
                "endValue": end,
                "events": events,
            }
        )
    document = {
        "$schema": SPEEDSCOPE_SCHEMA,
        "name": name,
        "exporter": f"pontem-async {__version__}",
        "activeProfileIndex": 0,
        "shared": {"frames": [{"name": label} for label in frame]},
        "profiles": profiles,
    }
    return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)


def collapsed_lines(roots: Iterable[TreeNode], sort: str) -> list[str]:
    """Collapsed stacks of ``roots``: ``frame;frame;... microseconds`` per node with self time."""
    lines: list[str] = []
    stack: list[tuple[TreeNode, str]] = [(root, "") for root in reversed(list(roots))]
    while stack:
        node, above = stack.pop()
        frames = f"{above};{_frame(node.label)}" if above else _frame(node.label)
        micros = (node.self_ns + 500) // 1000
        if micros:
            lines.append(f"{frames} {micros}")
        stack.extend((child, frames) for child in reversed(node.ordered(sort)))
    return lines


def _frame(label: str) -> str:
    """A label as one collapsed-stack frame: no separator, no line break."""
    return label.replace(";", ",").replace("\r", " ").replace("\n", " ")
