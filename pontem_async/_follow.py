"""Following a live telemetry file like ``tail -F``, without losing lines at rotations."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO

from pontem_async._jsonl_files import Line, _head, _lines, _open_any, _Reports, _rotated

__all__ = ["_Follower"]

_CHUNK = 1 << 20


class _Follower:
    """Follows one live file by name, like ``tail -F``, without losing lines at a rotation.

    The file is kept open: when the name points to a new file (rotation), the old one is read
    to its end first (the writer has moved on). Several rotations can happen between two polls,
    so the rotated files newer than the finished one (found by first line, which renames and
    gzip keep) are read next, then the new file. A file that shrank was truncated: read again.
    """

    def __init__(self, path: str, reports: _Reports) -> None:
        self.path = path
        self._reports = reports
        self._handle: IO[bytes] | None = None
        self._ident = (0, 0)
        self._partial = b""
        self._lineno = 0
        self._finished: bytes | None = None  # first line of the last rotated file read

    def _open(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._reports.problem(f"{self.path}: cannot read: {exc.strerror or exc}", fatal=True)
            return False
        stat = os.fstat(handle.fileno())
        self._handle, self._ident = handle, (stat.st_dev, stat.st_ino)
        self._partial, self._lineno = b"", 0
        return True

    def _drain(self, *, final: bool = False) -> Iterator[tuple[str, Line]]:
        """Complete lines appended since the last read; a last line still being written waits
        for its newline, unless ``final`` (the writer has left this file)."""
        assert self._handle is not None
        while True:
            chunk = self._handle.read(_CHUNK)
            if chunk:
                *complete, self._partial = (self._partial + chunk).split(b"\n")
            elif final and self._partial:
                complete, self._partial = [self._partial], b""
            else:
                return
            for raw in complete:
                self._lineno += 1
                if raw.strip():
                    yield self.path, (self._lineno, raw.rstrip(b"\r"))

    def _open_rotated(self, number: int) -> tuple[str, IO[bytes] | None]:
        for path in (f"{self.path}.{number}", f"{self.path}.{number}.gz"):
            with contextlib.suppress(OSError):
                return path, _open_any(path)
        return "", None

    def _catch_up(self) -> Iterator[tuple[str, Line]]:
        """Lines of the rotated files newer than the finished one, oldest first. Names shift
        while the writer rotates, so files are opened first, by number from ``.1`` up until the
        finished one; one met twice (shifted under us) counts once. Not found (deleted at once,
        ``backup_count=0``): nothing to add."""
        newer: list[tuple[str, IO[bytes], bytes | None]] = []
        seen: set[bytes | None] = set()
        number, found = 0, False
        while not found:
            number += 1
            path, handle = self._open_rotated(number)
            if handle is None:  # a gap while the writer shifts names, or the end of the set
                if any(n > number for n in _rotated(self.path)):
                    continue
                break
            head = _head(handle)
            found = head == self._finished
            if found or head in seen:
                handle.close()
            else:
                seen.add(head)
                newer.append((path, handle, head))
        current = None  # the file now followed may have been rotated meanwhile: not twice
        if self._handle is not None:
            current = os.pread(self._handle.fileno(), _CHUNK, 0).split(b"\n", 1)[0]
        for path, handle, head in reversed(newer):
            if found and head not in (None, b"", current):
                self._finished = head
                yield from ((path, line) for line in _lines(path, self._reports, handle))
            handle.close()

    def poll(self) -> Iterator[tuple[str, Line]]:
        """Lines that arrived since the last poll (all of them on the first)."""
        if self._handle is not None:
            yield from self._drain()
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return  # rotated away; the new file is not there yet
            if (stat.st_dev, stat.st_ino) == self._ident:
                if stat.st_size < self._handle.tell():
                    self._reports.problem(f"{self.path}: file truncated; reading it again")
                    self._handle.seek(0)
                    self._partial, self._lineno = b"", 0
                    yield from self._drain()
                return
            yield from self._drain(final=True)
            self._handle.seek(0)
            self._finished = _head(self._handle)
            self.close()
        opened = self._open()  # before catching up: the new file may rotate meanwhile
        if self._finished is not None:
            yield from self._catch_up()
        if opened:
            self._finished = None
            yield from self._drain()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

