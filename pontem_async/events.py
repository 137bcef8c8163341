"""Events and runs: named events with a "current" view, and run contexts that stamp every record.

::

    import pontem_async as pa

    pa.start_run(meta={"operator": "ada"})      # run id "001", "002", ... under the site dir
    pa.event("exposure", {"seq": 1, "exptime": 30})
    pa.current("exposure")["data"]              # {"seq": 1, "exptime": 30}
    pa.stop_run()

The model is panoptes' telemetry server (``panoptes.utils.telemetry``), kept so its users and its
HTTP clients keep working (the aiohttp integration serves the same API):

- an **event** has a ``type`` and a JSON object of ``data``; it becomes an
  :class:`~pontem_async.records.EventRecord` handed to the pipeline like any record, and, with
  ``make_current`` (the default), the latest event of its type in the **current view**;
- the current view has two layers, as in panoptes: events made outside a run (the *site*) and
  events made during the active run. :func:`current` merges them, the run's winning; starting
  or stopping a run empties the run's layer;
- a **run** has an id (given, taken from ``meta["run_id"]``, or the next number under the site
  directory: ``001``, ``002``, ... — at least three digits, one more than the largest numeric
  directory name there), a directory (``<site_dir>/<run_id>`` unless ``run_dir`` says otherwise;
  a relative ``run_dir`` is under the site dir) and ``meta``. While it is active, every event is
  also appended to ``<run_dir>/telemetry.ndjson`` (one JSONL ``event`` line, SCHEMA.md), and
  every record of the telemetry carries the run id.

How records carry the run id at no cost on the hot paths: the telemetry's ``resource`` mapping
(which every log, metric export and profile record takes by reference when it is built) is
replaced, while the run is active, by a copy holding :data:`RUN_ID_ATTRIBUTE` as well; stopping
the run puts back a mapping without it. Records built before the swap keep the resource they
were built with.

The site directory is ``site_dir`` given to :func:`start_run`, else ``$PONTEM_SITE_DIR``, else
``telemetry.events.site_dir``, else ``./telemetry/runs``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pontem_async import settings
from pontem_async.encoding.jsonl import encode_line
from pontem_async.errors import PontemError
from pontem_async.records import EventRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = [
    "RUN_FILE_NAME",
    "RUN_ID_ATTRIBUTE",
    "EventStore",
    "NoRunError",
    "RunActiveError",
    "current",
    "event",
    "get_run",
    "start_run",
    "stop_run",
]

RUN_ID_ATTRIBUTE = "pontem.run_id"
"""The resource attribute holding the active run's id (on every record built during a run)."""
RUN_FILE_NAME = "telemetry.ndjson"
"""The file in a run's directory that every event of the run is appended to."""
_MIN_RUN_ID_WIDTH = 3


class RunActiveError(PontemError, RuntimeError):
    """:func:`start_run` was called while a run is active (HTTP 409 in the telemetry API)."""


class NoRunError(PontemError, LookupError):
    """There is no active run to stop (HTTP 404 in the telemetry API)."""


def _utc_iso(ns: int) -> str:
    """``2024-06-10T06:13:20.123Z``: panoptes' ``ts`` spelling (UTC, milliseconds, ``Z``)."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)  # 3.10: no datetime.UTC
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_run_id(site_dir: Path) -> str:
    """One more than the largest all-digit directory name under ``site_dir``, zero-padded to
    the widest such name and at least three digits; ``001`` when there is none."""
    numbers = []
    try:
        for entry in site_dir.iterdir():
            if entry.name.isdigit() and entry.is_dir():
                numbers.append(entry.name)
    except FileNotFoundError:
        pass
    if not numbers:
        return "1".zfill(_MIN_RUN_ID_WIDTH)
    width = max(_MIN_RUN_ID_WIDTH, *(len(str(int(n))) for n in numbers))
    return str(max(int(n) for n in numbers) + 1).zfill(width)


class _Run:
    """The active run: what :func:`get_run` reports, and its open event file."""

    __slots__ = ("file", "lock", "meta", "run_dir", "run_id", "seq", "started_at")

    def __init__(self, run_id: str, run_dir: Path, meta: dict[str, Any], file: IO[bytes]) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.meta = meta
        self.started_at = _utc_iso(time.time_ns())
        self.file = file
        self.seq = 0
        self.lock = threading.Lock()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "run_id": self.run_id,
            "meta": dict(self.meta),
            "started_at": self.started_at,
        }


class EventStore:
    """Events, the current view and the active run of one :class:`~pontem_async.Telemetry`
    (``telemetry.events``; the module functions use the default instance's)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._site: dict[str, dict[str, Any]] = {}
        self._run_current: dict[str, dict[str, Any]] = {}
        self._site_seq = 0
        self.site_dir: str | os.PathLike[str] | None = None
        """The site directory when :meth:`start_run` is given none; below ``PONTEM_SITE_DIR``
        in precedence, like a configuration file's value."""

    # ------------------------------------------------------------------ events

    def event(
        self,
        type: str,
        data: Mapping[str, Any],
        make_current: bool = True,
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record an event; returns its envelope (``seq``, ``ts``, ``type``, ``data``, ``meta``),
        as panoptes' ``POST /event`` answers. During a run ``meta`` gains ``run_id`` and the
        event is appended to the run's ``telemetry.ndjson`` before this returns.

        Raises:
            TypeError: ``type`` is not a non-empty str, ``data`` or ``meta`` not a mapping.
        """
        if not isinstance(type, str) or not type:
            raise TypeError(f"type: expected a non-empty str, got {type!r}")
        if not isinstance(data, Mapping):
            raise TypeError(f"data: expected a mapping (a JSON object), got {data.__class__}")
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"meta: expected a mapping or None, got {meta.__class__}")
        tel = self._telemetry
        now = time.time_ns()
        with self._lock:
            run = self._run
            event_meta = dict(meta) if meta else {}
            if run is not None:
                event_meta["run_id"] = run.run_id
                run.seq += 1
                seq = run.seq
            else:
                self._site_seq += 1
                seq = self._site_seq
            run_id = None if run is None else run.run_id
            record = EventRecord(now, type, data, event_meta, run_id, tel.resource)
            envelope = {
                "seq": seq,
                "ts": _utc_iso(now),
                "type": type,
                "data": data,
                "meta": event_meta,
            }
            if make_current:
                (self._site if run is None else self._run_current)[type] = envelope
            if run is not None:
                self._append(run, record)
        try:
            tel.submit(record)
        except Exception as exc:  # telemetry never breaks the application
            tel._internal_error("event", exc)
        return dict(envelope)

    def _append(self, run: _Run, record: EventRecord) -> None:
        """One JSONL line, one write, flushed: the file never holds half an event."""
        try:
            run.file.write(encode_line(record))
            run.file.flush()
        except (OSError, ValueError) as exc:
            self._telemetry._internal_error(f"run file {run.run_dir / RUN_FILE_NAME}", exc)

    def current(self, type: str | None = None) -> Any:
        """Without ``type``: ``{type: envelope}`` of the latest current event of every type (the
        run's over the site's). With ``type``: that type's envelope, or None."""
        with self._lock:
            if type is not None:
                found = self._run_current.get(type) or self._site.get(type)
                return None if found is None else dict(found)
            merged = {**self._site, **self._run_current}
            return {name: dict(envelope) for name, envelope in merged.items()}

    # ------------------------------------------------------------------ runs

    def start_run(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        run_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        site_dir: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """Start a run; returns what :meth:`get_run` will report (``run_dir``, ``run_id``,
        ``meta``, ``started_at``).

        Raises:
            RunActiveError: a run is already active.
            TypeError: ``meta`` is not a mapping, ``run_id`` not a non-empty str.
            OSError: the run directory or its event file cannot be created.
        """
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"meta: expected a mapping or None, got {meta.__class__}")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise TypeError(f"run_id: expected a non-empty str or None, got {run_id!r}")
        site = Path(
            settings.resolve(
                site_dir, settings.PONTEM_SITE_DIR, self.site_dir, settings.DEFAULT_SITE_DIR
            )
        ).expanduser()
        with self._lock:
            if self._run is not None:
                raise RunActiveError(f"run {self._run.run_id!r} is already active")
            run_meta = dict(meta) if meta else {}
            chosen = str(run_id or run_meta.get("run_id") or next_run_id(site))
            path = site / chosen if run_dir is None else Path(run_dir).expanduser()
            if run_dir is not None and not path.is_absolute():
                path = site / path
            path.mkdir(parents=True, exist_ok=True)
            file = open(path / RUN_FILE_NAME, "ab")  # noqa: SIM115 (closed by stop_run)
            run_meta["run_id"] = chosen
            self._run = _Run(chosen, path, run_meta, file)
            self._run_current = {}
            self._restamp()
            return self._run.as_dict()

    def stop_run(self) -> dict[str, Any]:
        """Stop the active run and close its event file; returns what it was.

        Raises:
            NoRunError: no run is active.
        """
        with self._lock:
            run = self._run
            if run is None:
                raise NoRunError("no run is active")
            self._run = None
            self._run_current = {}
            self._restamp()
        try:
            run.file.close()
        except OSError as exc:
            self._telemetry._internal_error(f"run file {run.run_dir / RUN_FILE_NAME}", exc)
        return run.as_dict()

    def get_run(self) -> dict[str, Any] | None:
        """The active run (``run_dir``, ``run_id``, ``meta``, ``started_at``), or None."""
        with self._lock:
            return None if self._run is None else self._run.as_dict()

    @property
    def run_id(self) -> str | None:
        """The active run's id, or None."""
        run = self._run
        return None if run is None else run.run_id

    def restamp(self) -> None:
        """Make the telemetry's resource say the active run (after a reconfiguration replaced
        it); ``Telemetry`` calls it."""
        with self._lock:
            self._restamp()

    def _restamp(self) -> None:
        tel = self._telemetry
        base = {k: v for k, v in tel.resource.items() if k != RUN_ID_ATTRIBUTE}
        if self._run is not None:
            base[RUN_ID_ATTRIBUTE] = self._run.run_id
        resource = base  # a new dict, never modified again (records share it by reference)
        tel.resource = resource
        exporter = tel._exporter  # metric exports read the resource it was started with
        if exporter is not None:
            exporter.resource = resource


def _store() -> EventStore:
    from pontem_async.telemetry import get_default

    return get_default().events


def event(
    type: str,
    data: Mapping[str, Any],
    make_current: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Record an event on the default instance (see :meth:`EventStore.event`)."""
    return _store().event(type, data, make_current, meta)


def current(type: str | None = None) -> Any:
    """The current view of the default instance (see :meth:`EventStore.current`)."""
    return _store().current(type)


def start_run(
    run_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    meta: Mapping[str, Any] | None = None,
    *,
    site_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Start a run on the default instance (see :meth:`EventStore.start_run`)."""
    return _store().start_run(run_dir, run_id, meta, site_dir=site_dir)


def stop_run() -> dict[str, Any]:
    """Stop the default instance's run (see :meth:`EventStore.stop_run`)."""
    return _store().stop_run()


def get_run() -> dict[str, Any] | None:
    """The default instance's active run, or None."""
    return _store().get_run()
