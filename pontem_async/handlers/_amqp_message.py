"""Batches to AMQP messages: grouping by routing key, JSONL bodies, size-bounded splitting.

The wire format (DESIGN section 6): one message per batch, its body the batch's JSONL lines
(``pontem_async.encoding.jsonl``), optionally gzipped, with these properties:

=====================  ======================================================================
``content_type``       ``application/x-ndjson``
``content_encoding``   ``identity`` or ``gzip``
``type``               the record kind of every line in the message (``log``, ``metric``, ...)
``app_id``             the service name (``service.name`` of the records' resource)
``message_id``         unique per message and kept when it is re-published: consumers drop
                       the duplicates at-least-once delivery can produce by this id
``timestamp``          when the message was built
``headers.records``    how many lines the body holds
``delivery_mode``      persistent (2) unless the handler was built with ``persistent=False``
=====================  ======================================================================

A batch becomes one message per distinct routing key, each keeping the order of its records.
On a fanout exchange the key is not used for routing, so records are grouped by kind only (a
message's ``type`` is one kind). A group larger than ``max_message_bytes`` (uncompressed) is
split; a single line larger than that alone cannot be sent and is counted as ``too_large``.

Encoding runs on the event loop in slices with a yield between them, so a huge batch never
blocks the loop for long; gzip runs in the default executor (zlib releases the GIL).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import string
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pontem_async.encoding.jsonl import encode_line
from pontem_async.records import Level, LogRecord, Record

__all__ = ["CONTENT_TYPE", "MessageBuilder", "Outgoing", "check_routing_key"]

CONTENT_TYPE = "application/x-ndjson"
_FIELDS = frozenset({"kind", "service", "level"})
_SLICE = 64  # records encoded between two yields to the loop
_MAX_KEY_BYTES = 255  # AMQP shortstr


@dataclass(slots=True)
class Outgoing:
    """One message waiting for (or under) publication. ``sent`` turns True once a publish was
    attempted on a live connection: re-publishing it may then produce a duplicate."""

    seq: int
    message_id: str
    routing_key: str
    kind: str
    app_id: str
    timestamp: int  # seconds since the epoch
    records: int
    encoding: str  # "identity" or "gzip"
    body: bytes
    sent: bool = False

    @property
    def size(self) -> int:
        return len(self.body)

    def properties(self) -> dict[str, Any]:
        """Keyword arguments of ``aio_pika.Message`` (all but ``body`` and ``delivery_mode``)."""
        return {
            "content_type": CONTENT_TYPE,
            "content_encoding": self.encoding,
            "type": self.kind,
            "app_id": self.app_id,
            "message_id": self.message_id,
            "timestamp": _dt.datetime.fromtimestamp(self.timestamp, tz=_dt.timezone.utc),
            "headers": {"records": self.records},
        }

    def dump(self) -> bytes:
        """The spill-file form: a JSON header line, then the body."""
        header = {
            "seq": self.seq,
            "message_id": self.message_id,
            "routing_key": self.routing_key,
            "kind": self.kind,
            "app_id": self.app_id,
            "timestamp": self.timestamp,
            "records": self.records,
            "encoding": self.encoding,
            "sent": self.sent,
        }
        return orjson.dumps(header) + b"\n" + self.body

    @classmethod
    def load(cls, data: bytes) -> Outgoing:
        """The inverse of :meth:`dump`. Raises ValueError on a damaged file."""
        head, sep, body = data.partition(b"\n")
        if not sep:
            raise ValueError("no header line")
        try:
            h = orjson.loads(head)
            return cls(
                int(h["seq"]), str(h["message_id"]), str(h["routing_key"]), str(h["kind"]),
                str(h["app_id"]), int(h["timestamp"]), int(h["records"]), str(h["encoding"]),
                body, bool(h.get("sent", False)),
            )  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"bad header: {exc}") from None


def check_routing_key(template: object) -> str:
    """Validate a routing-key template (fields ``{kind}``, ``{service}``, ``{level}``)."""
    if not isinstance(template, str):
        raise TypeError(f"routing_key: expected a string, got {type(template).__name__}")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"routing_key: not a valid template ({exc}): {template!r}") from None
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise ValueError(
            f"routing_key: unknown field {{{unknown[0]}}} in {template!r}; "
            f"expected some of {{kind}}, {{service}}, {{level}}"
        )
    return template


def _word(value: str) -> str:
    """A value fit for one word of a topic key: dots would split it into several."""
    return value.replace(".", "_").replace(" ", "_") or "none"


def _service(record: Record) -> str:
    resource = getattr(record, "resource", None)
    if resource:
        name = resource.get("service.name")
        if isinstance(name, str) and name:
            return name
    return "unknown"


class MessageBuilder:
    """Turns a batch into :class:`Outgoing` messages; see the module docstring.

    Args:
        use_key: False for a fanout exchange (group by kind only).
        routing_key: the validated template.
        max_message_bytes: most uncompressed body bytes per message.
        compression: None or ``"gzip"``.
        on_too_large: called with the number of records too large to send.
    """

    def __init__(
        self,
        *,
        use_key: bool,
        routing_key: str,
        max_message_bytes: int,
        compression: str | None,
        id_prefix: str,
        on_too_large: Callable[[int], None],
    ) -> None:
        self.use_key = use_key
        self.template = routing_key
        self.max_bytes = max_message_bytes
        self.compression = compression
        self.id_prefix = id_prefix
        self.on_too_large = on_too_large
        self.next_seq = 0
        self._keys: dict[tuple[str, str, int], str] = {}

    def _key(self, record: Record, service: str) -> str:
        severity = record[1] if isinstance(record, LogRecord) else 0
        cache_key = (record.kind, service, severity)
        key = self._keys.get(cache_key)
        if key is None:
            level = Level.parse(severity).name.lower() if severity else "none"
            key = self.template.format(kind=record.kind, service=_word(service), level=level)
            key = key.encode()[:_MAX_KEY_BYTES].decode("utf-8", "ignore")
            if len(self._keys) < 10_000:
                self._keys[cache_key] = key
        return key

    async def build(self, batch: Sequence[Record]) -> list[Outgoing]:
        """The messages of ``batch``, in order of each group's first record."""
        groups: dict[tuple[str, str], tuple[str, list[bytes]]] = {}
        for start in range(0, len(batch), _SLICE):
            if start:
                await asyncio.sleep(0)
            for record in batch[start : start + _SLICE]:
                service = _service(record)
                key = self._key(record, service) if self.use_key else ""
                group = groups.get((record.kind, key))
                if group is None:
                    group = groups[(record.kind, key)] = (service, [])
                group[1].append(encode_line(record))
        out: list[Outgoing] = []
        for (kind, key), (service, lines) in groups.items():
            for chunk in self._split(lines):
                out.append(await self._message(kind, key, service, chunk))
        return out

    def _split(self, lines: list[bytes]) -> list[list[bytes]]:
        chunks: list[list[bytes]] = []
        current: list[bytes] = []
        size = too_large = 0
        for line in lines:
            if len(line) > self.max_bytes:
                too_large += 1
                continue
            if current and size + len(line) > self.max_bytes:
                chunks.append(current)
                current, size = [], 0
            current.append(line)
            size += len(line)
        if current:
            chunks.append(current)
        if too_large:
            self.on_too_large(too_large)
        return chunks

    async def _message(self, kind: str, key: str, service: str, lines: list[bytes]) -> Outgoing:
        body = b"".join(lines)
        encoding = "identity"
        if self.compression == "gzip":
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(None, _gzip, body)
            encoding = "gzip"
        seq = self.next_seq
        self.next_seq += 1
        return Outgoing(
            seq, f"{self.id_prefix}-{seq}", key, kind, service, int(time.time()), len(lines),
            encoding, body,
        )  # fmt: skip


def _gzip(data: bytes) -> bytes:
    """gzip framing (``wbits=31``), so ``gzip -d`` and any HTTP-style decoder read it."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()
