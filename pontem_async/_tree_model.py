"""Many profile lines folded into one call tree: the model behind ``pontem-async tree``.

A node is a *path* from a root (``handle -> query``), not a method: the same method called from
two places gives two nodes, so the tree answers "where does the time of this root go". Each node
keeps the number of calls, total and self time, errors, unfinished calls and the durations its
percentiles are taken from.

Self time is counted per call, as that call's duration minus its children's durations, clamped at
0: children run concurrently (``gather``, tasks) can add up to more than their parent's wall time,
and a negative self time would mean nothing. Without concurrency it equals total minus the
children's totals.

Percentiles are nearest-rank (``sorted[ceil(p/100 * n) - 1]``, always an observed duration) and
exact while a node has at most :data:`EXACT_LIMIT` calls. Past that the node keeps a uniform
reservoir sample of that size (Vitter's algorithm R with a fixed seed: the same input gives the
same answer, run after run), so memory stays bounded by nodes rather than calls; the percentile
is then an estimate (:attr:`TreeNode.estimated`; the text view prefixes it with ``~``). A
t-digest would be smaller but is neither exact nor simpler to check, and 10,000 samples put p95
within about 0.2 percentile points.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["EXACT_LIMIT", "SORT_KEYS", "CallTree", "InvalidProfile", "TreeNode", "label"]

EXACT_LIMIT = 10_000
"""Durations kept per node; percentiles are exact up to this many calls."""

_SEED = 0x70E7  # any constant: determinism, not randomness quality, is the point
_MAX_NS = 2**63  # the samples are signed 64-bit integers


def label(name: str, parent: str | None) -> str:
    """How a node is shown: its method path without its parent's path (phanos paths nest,
    ``Svc:handle`` -> ``Svc:handle.query`` shows as ``query``); the full path otherwise."""
    if parent is not None and len(name) > len(parent) + 1 and name.startswith(parent + "."):
        return name[len(parent) + 1 :]
    return name


class TreeNode:
    """One path of the merged tree and the statistics of every call made along it."""

    __slots__ = (
        "_estimated",
        "_rng",
        "_samples",
        "_seen",
        "calls",
        "children",
        "errors",
        "label",
        "name",
        "self_ns",
        "total_ns",
        "unfinished",
    )

    def __init__(self, name: str, parent: str | None) -> None:
        self.name = name
        self.label = label(name, parent)
        self.calls = 0
        self.total_ns = 0
        self.self_ns = 0
        self.errors = 0
        self.unfinished = 0
        self.children: dict[str, TreeNode] = {}
        self._samples = array("q")
        self._seen = 0
        self._rng: random.Random | None = None
        self._estimated: tuple[int, int] | None = None

    def add(self, duration: int | None, self_ns: int, error: bool, unfinished: bool) -> None:
        """Count one call. A call without a duration (``null`` on the line: a writer that closed
        nothing) counts as a call and as unfinished, but adds no time and no sample."""
        self.calls += 1
        self.errors += error
        self.unfinished += unfinished or duration is None
        if duration is None:
            return
        self.total_ns += duration
        self.self_ns += self_ns
        self._seen += 1
        if len(self._samples) < EXACT_LIMIT:
            self._samples.append(duration)
            return
        if self._rng is None:
            self._rng = random.Random(_SEED)
        slot = self._rng.randrange(self._seen)
        if slot < EXACT_LIMIT:
            self._samples[slot] = duration

    @property
    def estimated(self) -> bool:
        """Whether the percentiles come from a sample rather than every duration."""
        return self._seen > len(self._samples)

    def percentiles(self, *ps: int) -> tuple[int, ...] | None:
        """Nearest-rank percentiles of the durations, in ns; None without any duration."""
        ordered = sorted(self._samples)
        n = len(ordered)
        if not n:
            return None
        return tuple(ordered[-(-p * n // 100) - 1 if p else 0] for p in ps)

    def ordered(self, sort: str) -> list[TreeNode]:
        """The children in ``sort`` order (see :data:`SORT_KEYS`)."""
        return sorted(self.children.values(), key=SORT_KEYS[sort])


SORT_KEYS: dict[str, Callable[[TreeNode], Any]] = {
    "total": lambda n: (-n.total_ns, n.label, n.name),
    "self": lambda n: (-n.self_ns, n.label, n.name),
    "calls": lambda n: (-n.calls, n.label, n.name),
    "name": lambda n: (n.label, n.name),
}
"""``--sort`` keys: biggest first (ties by name), or by name."""


class InvalidProfile(ValueError):
    """A profile line whose call tree is not the documented shape (the message says where)."""


def _check(root: Any) -> None:
    """Raise :class:`InvalidProfile` unless every node has what :meth:`CallTree.add` reads."""
    stack: list[tuple[Any, str]] = [(root, "root")]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict):
            raise InvalidProfile(f"{where}: expected an object, got {type(node).__name__}")
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidProfile(f"{where}.name: expected a non-empty string, got {name!r}")
        duration = node.get("duration_ns")
        if duration is not None and (type(duration) is not int or not 0 <= duration < _MAX_NS):
            raise InvalidProfile(f"{where}.duration_ns: expected ns >= 0, got {duration!r}")
        attributes = node.get("attributes", {})
        if not isinstance(attributes, dict):
            raise InvalidProfile(f"{where}.attributes: expected an object")
        children = node.get("children", [])
        if not isinstance(children, list):
            raise InvalidProfile(f"{where}.children: expected a list")
        stack.extend((child, f"{where}.children[{i}]") for i, child in enumerate(children))


class CallTree:
    """The merged tree of many profile lines, one top-level node per root name.

    Args:
        roots: when given, only profiles whose root has one of these names are kept.
    """

    def __init__(self, roots: Iterable[str] | None = None) -> None:
        self.roots: dict[str, TreeNode] = {}
        self.profiles = 0
        self._only = frozenset(roots) if roots is not None else None

    def add(self, line: dict[str, Any]) -> bool:
        """Merge the call tree of one decoded ``profile`` line; False if ``--root`` left it out.

        Raises:
            InvalidProfile: the tree is malformed; nothing of it was merged.
        """
        _check(line.get("root"))
        root: dict[str, Any] = line["root"]
        if self._only is not None and root["name"] not in self._only:
            return False
        self.profiles += 1
        stack: list[tuple[dict[str, Any], dict[str, TreeNode], str | None]] = [
            (root, self.roots, None)
        ]
        while stack:
            raw, siblings, parent = stack.pop()
            name: str = raw["name"]
            node = siblings.get(name)
            if node is None:
                node = siblings[name] = TreeNode(name, parent)
            children: list[dict[str, Any]] = raw.get("children", [])
            duration: int | None = raw.get("duration_ns")
            inner = sum(child.get("duration_ns") or 0 for child in children)
            node.add(
                duration,
                max(0, (duration or 0) - inner),
                raw.get("error") is not None,
                raw.get("attributes", {}).get("unfinished") is True,
            )
            stack.extend((child, node.children, name) for child in reversed(children))
        return True

    def ordered(self, sort: str) -> list[TreeNode]:
        """The root nodes in ``sort`` order."""
        return sorted(self.roots.values(), key=SORT_KEYS[sort])

    @property
    def total_ns(self) -> int:
        """Time of every root together: what ``--min-percent`` is a percentage of."""
        return sum(node.total_ns for node in self.roots.values())
