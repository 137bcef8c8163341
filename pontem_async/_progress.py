"""A one-line progress display for long command-line work, on a terminal only.

::

    with progress(total=None, unit="records", label="pontem-async tree") as bar:
        for record in records:
            bar.advance()
            ...
            bar.clear()          # before writing anything else to the same stream

It writes to stderr (or ``stream``) and only when that stream is a TTY: piped or redirected
output, CI logs and tests get no output at all, so the display never ends up inside a file or
breaks a parser. On a terminal it redraws at most every ``interval`` seconds (0.5 by default),
so short work shows nothing, and wipes its line when done. ``advance`` is cheap enough to call
once per record: a counter increment, and on a TTY one clock read every 64 units.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

__all__ = ["Progress", "progress"]

_CLEAR = "\r\x1b[K"
_CHECK_EVERY = 64
"""Units between two looks at the clock: a call per record costs a counter increment."""


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError, AttributeError):  # closed, detached or not a file at all
        return False


class Progress:
    """The progress of one piece of work; see the module docstring.

    Args:
        total: how many units the work has, when known (shows ``n / total (p%)``).
        unit: what is counted (``records``, ``messages``, ``bytes``...).
        label: what the work is, shown first (``pontem-async tree``).
        stream: where to draw; default: the current ``sys.stderr``.
        interval: seconds between redraws.

    Attributes:
        count: units done so far (counted whether or not anything is shown).
        enabled: whether anything is drawn (``stream`` is a TTY).
    """

    def __init__(
        self,
        total: int | None = None,
        unit: str = "records",
        label: str = "",
        stream: IO[str] | None = None,
        interval: float = 0.5,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.unit = unit
        self.label = label
        self.interval = interval
        self.count = 0
        self.enabled = _is_tty(self.stream)
        self._shown = False
        self._next = time.monotonic() + interval
        self._check_at = _CHECK_EVERY

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units; redraw if the interval has passed."""
        count = self.count = self.count + n
        if count >= self._check_at and self.enabled:
            self._check_at = count + _CHECK_EVERY
            if time.monotonic() >= self._next:
                self.draw()

    def draw(self) -> None:
        """Redraw the line now (on a TTY)."""
        if not self.enabled:
            return
        text = f"{self.count:,}"
        if self.total:
            text += f" / {self.total:,} {self.unit} ({min(100, self.count * 100 // self.total)}%)"
        else:
            text += f" {self.unit}"
        prefix = f"{self.label}: " if self.label else ""
        try:
            self.stream.write(f"\r{prefix}{text}")
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing
            self.enabled = False
            return
        self._shown = True
        self._next = time.monotonic() + self.interval

    def clear(self) -> None:
        """Wipe the line, so other text written to the stream starts on a clean line."""
        if self._shown:
            self._shown = False
            try:
                self.stream.write(_CLEAR)
                self.stream.flush()
            except (OSError, ValueError):
                self.enabled = False

    def close(self) -> None:
        """Wipe the line; nothing is drawn afterwards."""
        self.clear()
        self.enabled = False


@contextmanager
def progress(
    total: int | None = None,
    unit: str = "records",
    label: str = "",
    stream: IO[str] | None = None,
    interval: float = 0.5,
) -> Iterator[Progress]:
    """A :class:`Progress` that is closed (its line wiped) when the block ends, however."""
    bar = Progress(total, unit, label, stream, interval)
    try:
        yield bar
    finally:
        bar.close()
