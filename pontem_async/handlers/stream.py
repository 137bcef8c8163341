"""StreamHandler: records to a text stream, as JSONL or as readable console lines.

The write happens in the loop's default executor, one write per batch: a terminal or pipe that
stalls must stall this handler's consumer, never the application's event loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any, Literal, TextIO

from pontem_async.encoding.console import render_batch, use_color
from pontem_async.encoding.jsonl import encode_batch
from pontem_async.handlers.base import Handler
from pontem_async.records import Record

__all__ = ["StreamHandler"]

_FORMATS = ("json", "console")


class StreamHandler(Handler):
    """Write records to ``stream`` (default: the current ``sys.stderr``).

    Args:
        stream: a text stream; None looks up ``sys.stderr`` at each write, so redirections
            made after configuration (pytest's capture, ``contextlib.redirect_stderr``) apply.
        format: ``json`` (one JSONL line per record, as the file handler writes) or ``console``
            (``time LEVEL body key=value ...``, one line per record).
        color: colour the console format; default: only when the stream is a TTY and
            ``NO_COLOR`` is not set.
        **options: ``name``, ``kinds``, ``level``, ``filter`` (see :class:`Handler`).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        format: Literal["json", "console"] = "console",
        *,
        color: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if format not in _FORMATS:
            raise ValueError(f"format: expected one of {', '.join(_FORMATS)}, got {format!r}")
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream: expected a text stream, got {type(stream).__name__}")
        self._stream = stream
        self.format = format
        self._color = color

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def _use_color(self, stream: TextIO) -> bool:
        return self._color if self._color is not None else use_color(stream)

    def _render(self, batch: Sequence[Record], stream: TextIO) -> str:
        if self.format == "json":
            return encode_batch(batch).decode("utf-8")
        return render_batch(batch, color=self._use_color(stream))

    async def emit(self, batch: Sequence[Record]) -> None:
        stream = self.stream
        text = self._render(batch, stream)
        await asyncio.get_running_loop().run_in_executor(None, _write, stream, text)

    async def flush(self, timeout: float | None = None) -> None:
        stream = self.stream
        await asyncio.get_running_loop().run_in_executor(None, _flush, stream)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(format=self.format, stream=getattr(self.stream, "name", repr(self.stream)))
        return info


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def _flush(stream: TextIO) -> None:
    stream.flush()
