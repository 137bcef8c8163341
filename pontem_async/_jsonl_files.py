"""Reading telemetry JSONL files back: rotated sets, gzip, bad lines reported, never fatal.

The file handler rotates ``records.jsonl`` into ``records.jsonl.1.gz``, ``.2.gz``, ... (``.1``
the newest), so one stream of records is spread over several files, some compressed. A FILE
argument that is a directory, or a base name with rotated siblings, stands for that whole set in
chronological order (highest number first, the current file last). Used by ``tail`` (and by the
commands that aggregate records).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

import orjson

__all__ = ["FileSet", "Line", "TailError", "expand", "read_records"]

_ROTATED = re.compile(r"^(?P<base>.+)\.(?P<n>\d+)(?P<gz>\.gz)?$")
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_REPORTS = 20
_PROG = "pontem-async"

Line = tuple[int, bytes]
"""A line number (from 1) and the line's bytes without its newline."""


class TailError(Exception):
    """A FILE argument that stands for no readable file (exit status 1)."""


@dataclass(frozen=True)
class FileSet:
    """One stream of records: ``rotated`` files oldest first, then ``current`` (the live file,
    which may not exist right after a rotation; None when a rotated file was named alone)."""

    rotated: tuple[str, ...]
    current: str | None


def _rotated(base: str) -> dict[int, str]:
    """``base.N`` / ``base.N.gz`` beside ``base``, by N. If both ``.N`` and ``.N.gz`` exist the
    file is being compressed: the plain one is complete, so it wins."""
    directory, name = os.path.split(base)
    found: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory or "."):
            match = _ROTATED.match(entry)
            if match is not None and match["base"] == name:
                number = int(match["n"])
                if number not in found or not match["gz"]:
                    found[number] = os.path.join(directory, entry)
    return found


def _siblings(base: str) -> tuple[str, ...]:
    """The rotated files of ``base``, highest number (oldest) first."""
    found = _rotated(base)
    return tuple(found[n] for n in sorted(found, reverse=True))


def expand(arg: str) -> list[FileSet]:
    """The file sets one FILE argument stands for (see the module docstring).

    A directory holds one set per ``*.jsonl`` base name, sorted by name.

    Raises:
        TailError: when ``arg`` names nothing readable.
    """
    if os.path.isdir(arg):
        try:
            entries = os.listdir(arg)
        except OSError as exc:
            raise TailError(f"{arg}: cannot list: {exc.strerror or exc}") from None
        bases: set[str] = set()
        for entry in entries:
            match = _ROTATED.match(entry)
            name = match["base"] if match is not None else entry
            if name.endswith(".jsonl"):
                bases.add(name)
        if not bases:
            raise TailError(f"{arg}: no JSONL files (*.jsonl) in this directory")
        paths = [os.path.join(arg, name) for name in sorted(bases)]
        return [FileSet(_siblings(path), path) for path in paths]
    if os.path.exists(arg):
        if _ROTATED.match(os.path.basename(arg)):
            return [FileSet((arg,), None)]  # a rotated file never changes: read it alone
        return [FileSet(_siblings(arg), arg)]
    rotated = _siblings(arg)
    if rotated:  # between a rotation and the first write of the new file
        return [FileSet(rotated, arg)]
    raise TailError(f"{arg}: no such file or directory")


def _open_any(path: str) -> IO[bytes]:
    """``path`` opened for reading, decompressed if gzip. Told by the magic bytes of the file
    opened, not by its name: names shift under a writer that rotates. Raises OSError."""
    raw = open(path, "rb", buffering=0)  # noqa: SIM115 - returned open
    magic = raw.read(2)
    raw.seek(0)
    if magic != _GZIP_MAGIC:
        return io.BufferedReader(raw)
    packed = gzip.GzipFile(fileobj=raw, mode="rb")
    packed.myfileobj = raw  # closing it closes the file, as gzip.open(path) does
    return cast("IO[bytes]", packed)


def _head(handle: IO[bytes]) -> bytes | None:
    """The first line of an open file (rewound after), its identity across renames and gzip."""
    try:
        head = handle.readline().rstrip(b"\r\n")
        handle.seek(0)
    except (OSError, EOFError, zlib.error):
        return None
    return head


class _Reports:
    """Problems, on stderr: invalid lines (at most ``_MAX_REPORTS`` per file, so a file of
    garbage cannot flood the terminal) and unreadable files (these make the exit status 1)."""

    def __init__(self, err: IO[str], prog: str = _PROG) -> None:
        self.err = err
        self.prog = prog
        self.invalid: dict[str, int] = {}
        self.unreadable = False

    def problem(self, message: str, *, fatal: bool = False) -> None:
        self.err.write(f"{self.prog}: {message}\n")
        self.unreadable = self.unreadable or fatal

    def parse(self, path: str, line: Line) -> dict[str, Any] | None:
        """The JSON object on ``line``, or None (reported) when it is not one."""
        lineno, raw = line
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            reason = f"not JSON ({exc})"
        else:
            if isinstance(data, dict):
                return data
            reason = f"expected a JSON object, got {type(data).__name__}"
        count = self.invalid[path] = self.invalid.get(path, 0) + 1
        if count <= _MAX_REPORTS:
            self.problem(f"{path}:{lineno}: invalid line skipped: {reason}")
        if count == _MAX_REPORTS:
            self.problem(f"{path}: further invalid lines are skipped silently")
        return None


def _lines(path: str, reports: _Reports, handle: IO[bytes] | None = None) -> Iterator[Line]:
    """Non-blank lines of a whole file (read from ``handle`` if it is already open)."""
    lineno = 0
    try:
        with handle if handle is not None else _open_any(path) as file:
            for raw in file:
                lineno += 1
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    yield lineno, raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # truncated or corrupt archive
        reports.problem(f"{path}: unreadable compressed data after line {lineno}: {exc}")
    except OSError as exc:
        reports.problem(f"{path}: cannot read: {exc.strerror or exc}", fatal=True)



def read_records(arg: str, err: IO[str], prog: str = _PROG) -> Iterator[dict[str, Any]]:
    """Every record of a FILE argument, oldest first; bad lines are reported on ``err``.

    Raises:
        TailError: when ``arg`` names nothing readable.
    """
    reports = _Reports(err, prog)
    for fileset in expand(arg):
        paths = list(fileset.rotated)
        if fileset.current is not None and os.path.exists(fileset.current):
            paths.append(fileset.current)
        for path in paths:
            for line in _lines(path, reports):
                data = reports.parse(path, line)
                if data is not None:
                    yield data
