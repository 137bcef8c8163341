"""Finding the profiler's live call-tree nodes among the objects the GC tracks.

A live node is a plain ``list`` (``pontem_async._calltree.Node``): these tests recognise one by
its shape, which no other list in a test process has by chance.
"""

from __future__ import annotations

import gc
from typing import Any

from pontem_async._calltree import DURATION, NAME, NODE_FIELDS, ROOT, START


def is_live_node(obj: Any) -> bool:
    return (
        type(obj) is list
        and len(obj) >= NODE_FIELDS
        and type(obj[NAME]) is str
        and ":" in obj[NAME]
        and type(obj[START]) is int
        and (obj[DURATION] is None or type(obj[DURATION]) is int)
        and (obj[ROOT] is None or type(obj[ROOT]) is list)
    )


def live_nodes() -> int:
    """Call-tree nodes alive and tracked by the GC (roots included)."""
    return sum(1 for obj in gc.get_objects() if is_live_node(obj))
