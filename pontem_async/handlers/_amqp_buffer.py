"""The RabbitMQ handler's retry buffer: messages not yet confirmed, oldest first, in memory and
then on disk.

Why this shape:

- **Bounded memory** (``max_bytes`` of message bodies). A message that does not fit goes to
  the spill directory when there is one, else it is refused and the caller counts its records
  as dropped. The buffer keeps the oldest messages: the start of an outage usually explains it.
- **Order is kept across memory and disk.** Once a message went to disk, every later one goes
  to disk too until the disk part is empty again, so the queue is always "memory, then disk":
  memory holds the oldest.
- **Spill files survive the process.** One file per message, named by its sequence number,
  written as ``<seq>.tmp`` then renamed (a crash never leaves a torn message), mode 0600. A new
  handler on the same directory finds them in :meth:`open` and publishes them first; at
  :meth:`persist` (close while the broker is away) the memory part is written there as well.
- **All disk I/O in the default executor**, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from pontem_async.handlers._amqp_message import Outgoing

__all__ = ["RetryBuffer", "UnreadableSpill"]

_internal = logging.getLogger("pontem_async")
_NAME = re.compile(r"([0-9]{20})\.msg")
_T = TypeVar("_T")


class _Spilled:
    __slots__ = ("path", "records", "seq", "size")

    def __init__(self, seq: int, path: str, size: int, records: int) -> None:
        self.seq, self.path, self.size, self.records = seq, path, size, records


class RetryBuffer:
    """FIFO of :class:`Outgoing` messages: memory first, then the spill directory."""

    def __init__(self, max_bytes: int, spill_dir: str | None, spill_max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.spill_dir = spill_dir
        self.spill_max_bytes = spill_max_bytes
        self.memory: deque[Outgoing] = deque()
        self.memory_bytes = 0
        self.memory_records = 0
        self.spilled: deque[_Spilled] = deque()
        self.spill_bytes = 0
        self.spill_records = 0
        self.spilled_total = 0  # messages ever written to disk
        self._head: Outgoing | None = None  # the loaded first spill file

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        return len(self.memory) + len(self.spilled)

    @property
    def records(self) -> int:
        return self.memory_records + self.spill_records

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> int:
        """Index the spill files a previous run left; returns the next free sequence number."""
        if self.spill_dir is None:
            return 0
        found = await _run(self._scan, self.spill_dir)
        self.spilled = deque(found)
        self.spill_bytes = sum(s.size for s in found)
        self.spill_records = sum(s.records for s in found)
        if found:
            _internal.info(
                "RabbitMQ retry buffer: %d message(s) (%d records) left in %s by an earlier run "
                "will be published first",
                len(found),
                self.spill_records,
                self.spill_dir,
            )
        return found[-1].seq + 1 if found else 0

    @staticmethod
    def _scan(directory: str) -> list[_Spilled]:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        found: list[_Spilled] = []
        for entry in os.scandir(directory):
            if entry.name.endswith(".tmp"):  # a write a crash interrupted: never acknowledged
                os.unlink(entry.path)
                continue
            match = _NAME.fullmatch(entry.name)
            if match is None:
                continue
            try:
                with open(entry.path, "rb") as file:
                    message = Outgoing.load(file.read())
            except (OSError, ValueError) as exc:
                _internal.warning("RabbitMQ spill file %s is unreadable (%s); skipped", entry, exc)
                continue
            found.append(_Spilled(int(match[1]), entry.path, entry.stat().st_size, message.records))
        found.sort(key=lambda s: s.seq)
        return found

    # ------------------------------------------------------------------ queueing

    async def push(self, message: Outgoing) -> str | None:
        """Append ``message``; None when kept, else the drop reason (``buffer_full`` or
        ``spill_full``)."""
        if not self.spilled and (
            not self.memory or self.memory_bytes + message.size <= self.max_bytes
        ):
            self.memory.append(message)
            self.memory_bytes += message.size
            self.memory_records += message.records
            return None
        if self.spill_dir is None:
            return "buffer_full"
        data = message.dump()
        if self.spill_bytes + len(data) > self.spill_max_bytes:
            return "spill_full"
        try:
            path = await _run(_write, self.spill_dir, message.seq, data)
        except OSError as exc:
            _internal.warning("RabbitMQ retry buffer: cannot write to %s: %s", self.spill_dir, exc)
            return "spill_error"
        self.spilled.append(_Spilled(message.seq, path, len(data), message.records))
        self.spill_bytes += len(data)
        self.spill_records += message.records
        self.spilled_total += 1
        return None

    async def head(self) -> Outgoing | None:
        """The oldest message (still in the buffer until :meth:`pop` is called)."""
        if self.memory:
            return self.memory[0]
        while self.spilled:
            if self._head is not None:
                return self._head
            first = self.spilled[0]
            try:
                data = await _run(_read, first.path)
                self._head = Outgoing.load(data)
            except (OSError, ValueError) as exc:
                _internal.warning(
                    "RabbitMQ spill file %s is unreadable (%s); its %d records are lost",
                    first.path,
                    exc,
                    first.records,
                )
                self._forget_first()
                raise UnreadableSpill(first.records) from None
        return None

    async def pop(self, message: Outgoing) -> None:
        """Remove ``message``, which :meth:`head` returned and which is now confirmed."""
        if self.memory and self.memory[0] is message:
            self.memory.popleft()
            self.memory_bytes -= message.size
            self.memory_records -= message.records
            return
        if self._head is message:
            first = self.spilled[0]
            self._forget_first()
            with suppress(FileNotFoundError):
                await _run(os.unlink, first.path)

    def _forget_first(self) -> None:
        first = self.spilled.popleft()
        self.spill_bytes -= first.size
        self.spill_records -= first.records
        self._head = None

    async def persist(self) -> int:
        """Write the memory part to the spill directory (before the files already there: its
        messages are older); returns how many records are now kept on disk."""
        if self.spill_dir is None:
            return 0
        written: list[_Spilled] = []
        while self.memory:
            message = self.memory[0]
            data = message.dump()
            try:
                path = await _run(_write, self.spill_dir, message.seq, data)
            except OSError as exc:
                _internal.warning("RabbitMQ retry buffer: cannot write %s: %s", self.spill_dir, exc)
                break
            written.append(_Spilled(message.seq, path, len(data), message.records))
            self.memory.popleft()
            self.memory_bytes -= message.size
            self.memory_records -= message.records
        self.spilled.extendleft(reversed(written))
        self.spill_bytes += sum(s.size for s in written)
        self.spill_records += sum(s.records for s in written)
        self._head = None
        return self.spill_records

    def clear(self) -> int:
        """Forget everything held in memory (not the files); returns the records forgotten."""
        lost = self.memory_records
        self.memory.clear()
        self.memory_bytes = self.memory_records = 0
        return lost

    def stats(self) -> dict[str, Any]:
        return {
            "buffered_messages": len(self),
            "buffered_records": self.records,
            "buffered_bytes": self.memory_bytes,
            "spilled_messages": len(self.spilled),
            "spilled_bytes": self.spill_bytes,
            "spilled_total": self.spilled_total,
        }


class UnreadableSpill(Exception):
    """A spill file could not be read back; ``records`` were in it."""

    def __init__(self, records: int) -> None:
        super().__init__(records)
        self.records = records


def _write(directory: str, seq: int, data: bytes) -> str:
    path = os.path.join(directory, f"{seq:020d}.msg")
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


async def _run(func: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)
