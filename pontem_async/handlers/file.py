"""RotatingFileHandler: records as JSONL in a size-rotated, optionally gzipped set of files.

``path`` (``records.jsonl``) is the current file; full files become ``records.jsonl.1`` (the
newest), ``.2``, ... up to ``backup_count``, ending ``.gz`` with ``compress``; older ones go.

Why it is written the way it is:

- **One write per batch** (one per file segment when a batch straddles a rotation): lines are
  encoded on the consumer task, joined, and handed to the OS by one unbuffered ``aiofiles``
  write. One executor hop per batch, and nothing waits in a user-space buffer, so a crashing
  process loses nothing ``emit`` reported as written.
- **Rotate before the line that would overflow** a non-empty file: a file holds at most
  ``max_bytes``, or a single line when that line alone is larger. Renames use ``os.replace``.
- **gzip off the loop, crash-safe**: it runs in the default executor while records flow into
  the fresh file, writes ``.1.gz.tmp``, renames it to ``.1.gz`` and removes ``.1`` last, so a
  crash at any point leaves the data readable; ``open()`` finishes an interrupted job. The
  next rotation, ``flush()`` and ``close()`` wait for it, so the file set is stable when they
  return. A failed compression is logged and leaves ``.1`` as it is; it never costs records.
- **Mode 0640** for every file the handler creates, whatever the umask: a log shipper in the
  group can read, nobody else. An existing file keeps its mode; a ``.gz`` takes the mode of the
  file it replaces, so compressing never widens access.
- **Failures raise** ``OSError`` naming the path, from ``open()`` and ``emit()``; the pipeline
  counts the records as dropped and logs the cause once. A write failing midway is cut back to
  the last complete line, so the next batch never continues a torn line.

The pipeline never overlaps calls on one handler; code driving it directly must not either.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncFileIO

from pontem_async.encoding.jsonl import encode_line
from pontem_async.handlers.base import Handler
from pontem_async.records import Record

__all__ = ["RotatingFileHandler"]

_MODE = 0o640
_T = TypeVar("_T")
_internal = logging.getLogger("pontem_async")


class RotatingFileHandler(Handler):
    """Append records as JSONL lines to ``path``, rotating by size.

    Args:
        path: the current file (``./telemetry/records.jsonl``); missing parent directories are
            created by :meth:`open`. Relative paths are resolved once, here.
        max_bytes: size that triggers rotation (a positive integer).
        backup_count: rotated files kept (``0`` deletes a full file instead of keeping it).
        compress: gzip rotated files (``records.jsonl.1.gz``).
        fsync: also ``os.fsync`` after every batch and on :meth:`flush`, so records survive a
            power loss, not only a process crash (costs one disk sync per batch).
        **options: ``name``, ``kinds``, ``level``, ``filter`` (see :class:`Handler`).

    Raises:
        TypeError, ValueError: an argument has the wrong type or value; the message starts
            with the argument's name.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = 10 * 1024 * 1024,
        backup_count: int = 5,
        compress: bool = True,
        fsync: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
            raise TypeError(f"path: expected a path, got {type(path).__name__}")
        text = os.fspath(path)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"path: expected a non-empty file path, got {path!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes: expected a positive integer, got {max_bytes!r}")
        if isinstance(backup_count, bool) or not isinstance(backup_count, int) or backup_count < 0:
            raise ValueError(f"backup_count: expected an integer >= 0, got {backup_count!r}")
        for arg, value in (("compress", compress), ("fsync", fsync)):
            if not isinstance(value, bool):
                raise TypeError(f"{arg}: expected a bool, got {type(value).__name__}")
        self.path: str = os.path.abspath(text)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.compress = compress
        self.fsync = fsync
        self._file: AsyncFileIO | None = None
        self._size = 0
        self._compressing: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ the contract

    async def open(self) -> None:
        """Create the directory, open ``path`` for appending (counting what it already holds)
        and resume a compression a crash interrupted."""
        if self._file is not None:
            return
        await self._open_current()
        leftover = await self._run(self._interrupted_compression)
        if leftover is not None:
            self._start_compression(leftover)

    async def emit(self, batch: Sequence[Record]) -> None:
        """Append ``batch``, rotating before any line that would overflow a non-empty file."""
        if self._file is None:
            await self.open()
        segment: list[bytes] = []
        pending = 0
        for record in batch:
            line = encode_line(record)
            filled = self._size + pending
            if filled and filled + len(line) > self.max_bytes:
                if segment:
                    await self._write(b"".join(segment))
                    segment, pending = [], 0
                await self._rotate()
            segment.append(line)
            pending += len(line)
        if segment:
            await self._write(b"".join(segment))

    async def flush(self, timeout: float | None = None) -> None:
        """Every write already reached the OS (the file is unbuffered); with ``fsync`` the data
        is also synced to disk. Waits for a running compression so the file set is stable."""
        await self._finish_compression()
        if self._file is not None and self.fsync:
            await self._run(os.fsync, self._file.fileno())

    async def close(self, timeout: float | None = None) -> None:
        """Finish compressing, sync if asked, close the file. Idempotent; a later ``emit``
        opens the file again."""
        await self._finish_compression()
        file, self._file = self._file, None
        if file is None:
            return
        try:
            if self.fsync:
                await self._run(os.fsync, file.fileno())
        finally:
            await file.close()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        settings = ("path", "max_bytes", "backup_count", "compress", "fsync")
        info.update({setting: getattr(self, setting) for setting in settings})
        return info

    # ------------------------------------------------------------------ writing and rotating

    async def _open_current(self) -> None:
        directory = os.path.dirname(self.path)
        try:
            await aiofiles.os.makedirs(directory, exist_ok=True)
        except FileExistsError:  # a regular file stands where the directory should be
            raise NotADirectoryError(
                errno.ENOTDIR,
                f"handler {self.name!r}: cannot create the directory of {self.path}: "
                f"{directory} exists and is not a directory",
            ) from None
        except OSError as exc:
            raise self._error(f"cannot create the directory {directory}", exc) from exc
        try:
            file = await aiofiles.open(self.path, "ab", buffering=0, opener=_open_0640)
        except OSError as exc:
            raise self._error(f"cannot open {self.path} for appending", exc) from exc
        self._size = await file.seek(0, os.SEEK_END)
        self._file = file

    def _start_compression(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._compressing = loop.run_in_executor(None, _compress, path, self.fsync)

    async def _write(self, data: bytes) -> None:
        """One write (more only if the OS takes part of it); on failure, cut the torn tail."""
        file = self._file
        assert file is not None
        view = memoryview(data)
        try:
            while view:
                written = await file.write(view)
                if not written:
                    raise OSError(errno.EIO, f"writing {self.path} made no progress")
                view = view[written:]
            if self.fsync:
                await self._run(os.fsync, file.fileno())
        except OSError as exc:
            with suppress(OSError):
                await self._run(os.ftruncate, file.fileno(), self._size)
            raise self._error(f"cannot write to {self.path}", exc) from exc
        self._size += len(data)

    async def _rotate(self) -> None:
        await self._finish_compression()  # the shift below moves the file it works on
        file, self._file = self._file, None
        if file is not None:
            await file.close()
        try:
            rotated = await self._run(self._shift)
        except OSError as exc:
            raise self._error(f"cannot rotate {self.path}", exc) from exc
        await self._open_current()
        if rotated is not None and self.compress:
            self._start_compression(rotated)

    def _rotated(self, index: int) -> str:
        return f"{self.path}.{index}"

    def _shift(self) -> str | None:
        """Worker thread: ``.i`` -> ``.i+1`` from the oldest down (nothing is overwritten), those
        reaching ``backup_count`` deleted, the current file -> ``.1`` (returned; None if deleted).
        One directory listing instead of probing each index, so a big ``backup_count`` is free;
        both suffixes move, as ``compress`` may differ between runs."""
        directory, base = os.path.split(self.path)
        pattern = re.compile(re.escape(base) + r"\.([1-9][0-9]*)(\.gz)?")
        found = [m for m in map(pattern.fullmatch, os.listdir(directory)) if m is not None]
        for match in sorted(found, key=lambda m: int(m[1]), reverse=True):
            index, suffix = int(match[1]), match[2] or ""
            if index >= self.backup_count:
                os.unlink(self._rotated(index) + suffix)
            else:
                os.replace(self._rotated(index) + suffix, self._rotated(index + 1) + suffix)
        if self.backup_count:
            os.replace(self.path, self._rotated(1))
        else:
            os.unlink(self.path)
        if self.fsync:
            _fsync_dir(directory)
        return self._rotated(1) if self.backup_count else None

    def _interrupted_compression(self) -> str | None:
        """Worker thread: the ``.1`` a crash left uncompressed, if any. Next to a ``.1.gz`` (which
        appears complete, by rename) only the final unlink was missed, so ``.1`` just goes."""
        first = self._rotated(1)
        if not self.compress or not self.backup_count or not os.path.exists(first):
            return None
        if os.path.exists(first + ".gz"):
            os.unlink(first)
            return None
        return first

    async def _finish_compression(self) -> None:
        pending = self._compressing
        if pending is None:
            return
        try:
            await asyncio.shield(pending)  # a cancelled caller must not orphan the worker
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _internal.warning(
                "handler %r: could not gzip a rotated file (%s: %s); it stays uncompressed, "
                "no record is lost",
                self.name,
                type(exc).__name__,
                exc,
            )
        self._compressing = None

    async def _run(self, func: Callable[..., _T], *args: Any) -> _T:
        """Blocking file-system calls go to the default executor, never on the loop."""
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    def _error(self, what: str, exc: OSError) -> OSError:
        """The same OSError subclass, with a message that names the handler and the path."""
        reason = exc.strerror or str(exc)
        message = f"handler {self.name!r}: {what}: {reason}"
        return OSError(exc.errno, message) if exc.errno is not None else OSError(message)


def _open_0640(path: str, flags: int) -> int:
    """``opener`` for :func:`aiofiles.open`: a file created here gets exactly mode 0640."""
    try:
        fd = os.open(path, flags | os.O_EXCL, _MODE)
    except FileExistsError:
        return os.open(path, flags, _MODE)
    os.fchmod(fd, _MODE)  # os.open applied the umask; the documented mode is 0640
    return fd


def _compress(source: str, fsync: bool) -> None:
    """Runs in a worker thread: gzip ``source`` to ``source.gz`` (same mode: compressing must
    not change who can read the data); ``source`` is removed last."""
    target = source + ".gz"
    temporary = target + ".tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as raw:
            os.fchmod(fd, stat.S_IMODE(os.stat(source).st_mode))
            with (
                open(source, "rb") as plain,
                gzip.GzipFile(os.path.basename(source), "wb", 6, raw) as packed,
            ):
                shutil.copyfileobj(plain, packed, 1 << 20)
            if fsync:
                raw.flush()
                os.fsync(fd)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    os.unlink(source)
    if fsync:
        _fsync_dir(os.path.dirname(source))


def _fsync_dir(directory: str) -> None:
    """Make renames and unlinks in ``directory`` durable (POSIX needs the directory synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
