"""``pontem-async demo``: the README quick start's "main job", run for real on the embedded default.

It configures the default instance the way the README does (``pa.init(service_name=...,
emit_dir=...)``: warnings on stderr, every record in ``<dir>/records.jsonl``) and runs a short
asyncio workload that uses what a service uses: a few hundred concurrent requests, each with a
request id bound in its context and a bound logger, debug/info logs with attributes, slow requests
that warn, failures logged with ``log.exception`` (two error types, so fingerprints group), and a
synchronous worker thread logging through the same pipeline from a copied context.

Why it checks itself: the demo is also the shortest end-to-end proof of the "nothing is lost"
guarantee. After ``flush()`` and ``shutdown()`` it reads back the JSONL it wrote (rotated ``.gz``
files included) and exits 0 only when every record handed to the file handler is on disk and
nothing was dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import random
import shlex
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pontem_async as pa
from pontem_async import _tail, settings
from pontem_async.encoding.console import line_kind, line_severity
from pontem_async.fingerprint import message_template
from pontem_async.records import severity_text
from pontem_async.telemetry import default_handlers

__all__ = ["add_arguments", "run"]

SERVICE_NAME = "pontem-demo"
SLOW_MS = 150
WORKER_ROWS = 20
_ROUTES = ("/checkout", "/cart", "/search", "/users/{id}")


class UserNotFoundError(LookupError):
    """The simulated user store has no such user."""


@dataclass(frozen=True)
class _Request:
    """One simulated request, planned up front so the workload itself stays plain code."""

    request_id: str
    route: str
    user_id: int
    latency_ms: float
    failure: str | None  # None, "user" or "timeout"


def _plan(count: int, rng: random.Random) -> list[_Request]:
    plans = []
    for _ in range(count):
        roll = rng.random()
        slow = 0.90 <= roll < 0.98
        failure = "user" if roll < 0.06 else "timeout" if roll < 0.10 else None
        latency = rng.uniform(SLOW_MS + 10, 2 * SLOW_MS) if slow else rng.uniform(5, 60)
        plans.append(
            _Request(
                request_id=f"{rng.getrandbits(64):016x}",
                route=rng.choice(_ROUTES),
                user_id=rng.randrange(1, 10_000),
                latency_ms=latency,
                failure=failure,
            )
        )
    return plans


async def _load_user(user_id: int) -> None:
    await asyncio.sleep(0)
    raise UserNotFoundError(f"user {user_id} not found")


async def _reserve_stock() -> None:
    await asyncio.sleep(0)
    raise TimeoutError(f"inventory service timed out after {SLOW_MS} ms")


async def _handle(log: pa.Logger, request: _Request) -> str:
    """One request: exactly two log records, whatever the outcome (the tests count on it)."""
    with pa.bind_context(request_id=request.request_id):
        rlog = log.bind(route=request.route, method="GET")
        rlog.debug("request received", user_id=request.user_id)
        started = time.perf_counter()
        try:
            await asyncio.sleep(request.latency_ms / 1000)
            if request.failure == "user":
                await _load_user(request.user_id)
            elif request.failure == "timeout":
                await _reserve_stock()
        except (UserNotFoundError, TimeoutError):
            rlog.exception("request failed", status=500)
            return "failed"
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        if elapsed_ms >= SLOW_MS:
            rlog.warn("slow request", duration_ms=elapsed_ms, threshold_ms=SLOW_MS)
            return "slow"
        rlog.info("request handled", status=200, duration_ms=elapsed_ms)
        return "ok"


def _export_report(log: pa.Logger, rows: int) -> None:
    """Blocking code in a worker thread: logs go through the same pipeline, with the context
    of the task that started the thread (``contextvars.copy_context().run``)."""
    wlog = log.bind(worker="report-export")
    wlog.info("report export started", rows=rows)
    for row in range(rows):
        time.sleep(0.002)
        wlog.debug("row exported", row=row)
    wlog.info("report export finished", rows=rows)


def _produced(requests: int) -> int:
    """Log records one run makes: start and finish, two per request, the worker's rows plus
    its start and finish. Known in advance, so the check against the disk is independent of
    the pipeline's own accounting."""
    return 2 + 2 * requests + WORKER_ROWS + 2


async def _workload(log: pa.Logger, requests: int) -> Counter[str]:
    """Run the requests concurrently with the worker thread; returns outcomes by name."""
    with pa.bind_context(job="nightly-report"):
        context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(_export_report, log, WORKER_ROWS), name="report-export"
    )
    worker.start()
    plans = _plan(requests, random.Random())
    outcomes = Counter(await asyncio.gather(*(_handle(log, plan) for plan in plans)))
    await asyncio.to_thread(worker.join)
    return outcomes


@dataclass
class _OnDisk:
    """This run's records as read back from the files."""

    total: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    severities: Counter[int] = field(default_factory=Counter)
    fingerprints: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)


def _read_back(directory: str, run_id: str) -> _OnDisk:
    found = _OnDisk()
    try:
        for data in _tail.read_records(directory, sys.stderr):
            attributes = data.get("attributes")
            if not isinstance(attributes, Mapping) or attributes.get("run_id") != run_id:
                continue  # an earlier run's record in the same files
            found.total += 1
            found.kinds[line_kind(data)] += 1
            severity = line_severity(data)
            if severity is not None:
                found.severities[severity] += 1
            fingerprint = attributes.get("exception.fingerprint")
            if isinstance(fingerprint, str):
                found.fingerprints[fingerprint] += 1
                kind = attributes.get("exception.type", "?")
                message = message_template(str(attributes.get("exception.message", "")))
                found.examples.setdefault(fingerprint, f"{kind}: {message}")
    except _tail.TailError as exc:
        print(f"pontem-async demo: {exc}", file=sys.stderr)
    return found


def _summary(
    directory: str, outcomes: Counter[str], seconds: float, disk: _OnDisk, counts: tuple[int, int]
) -> str:
    produced, dropped = counts
    done = ", ".join(f"{outcomes[name]} {name}" for name in ("ok", "slow", "failed"))
    files = sorted(os.listdir(directory))
    lines = [
        f"{SERVICE_NAME}: {sum(outcomes.values())} requests ({done}) and a "
        f"{WORKER_ROWS}-row worker thread in {seconds:.2f} s",
        "",
        f"telemetry files in {directory}: {', '.join(files)}",
        f"  records of this run on disk: {disk.total} of {produced} produced",
        "  by kind:     " + "  ".join(f"{k} {n}" for k, n in sorted(disk.kinds.items())),
        "  by severity: "
        + "  ".join(f"{severity_text(k)} {n}" for k, n in sorted(disk.severities.items())),
        f"  dropped:     {dropped}",
        "",
        "top exception fingerprints:",
    ]
    for fingerprint, count in disk.fingerprints.most_common(5):
        lines.append(f"  {count:4d}  {fingerprint[:12]}  {disk.examples[fingerprint]}")
    if not disk.fingerprints:
        lines.append("  (none this run)")
    quoted = shlex.quote(directory)
    lines += ["", f"view them:   pontem-async tail {quoted}"]
    lines.append(f"errors only: pontem-async tail {quoted} --level error")
    return "\n".join(lines)


async def _main(directory: str, requests: int, quiet: bool) -> int:
    handlers = None
    if quiet:  # the embedded default minus its console echo of warnings
        handlers = [h for h in default_handlers(directory, "file") if h.name != "console"]
    telemetry = pa.init(
        service_name=SERVICE_NAME, handlers=handlers, emit_dir=directory, emit_target="file"
    )
    log = pa.get_logger("demo")
    run_id = uuid.uuid4().hex[:12]
    started = time.perf_counter()
    with pa.bind_context(run_id=run_id):
        log.info("demo started", requests=requests, worker_rows=WORKER_ROWS)
        outcomes = await _workload(log, requests)
        log.info("demo finished", **dict(outcomes))
    seconds = time.perf_counter() - started
    flushed = await telemetry.flush()
    report = await telemetry.shutdown()
    stats: dict[str, dict[str, Any]] = telemetry.stats()

    file_stats = stats.get("file", {})
    dropped = sum(sum(s.get("dropped", {}).values()) for s in stats.values())
    handed = int(file_stats.get("delivered", 0))
    disk = _read_back(directory, run_id)
    produced = _produced(requests)
    print(_summary(directory, outcomes, seconds, disk, (produced, dropped)))
    problems = []
    if not flushed:
        problems.append("flush() reported a handler failure or timed out")
    if not report.complete:
        problems.append(str(report))
    if dropped:
        problems.append(f"{dropped} records dropped: {stats}")
    if not disk.total == handed == produced:
        problems.append(
            f"{produced} records produced, {handed} handed to the file handler, "
            f"{disk.total} on disk"
        )
    for problem in problems:
        print(f"pontem-async demo: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``demo``'s arguments on its subparser."""
    parser.description = (
        "Run a short asyncio workload on the embedded default (no server needed), then read "
        "its JSONL back and summarise it; exits 0 only if every record reached the disk."
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help=f"where to write records.jsonl (default: ${settings.PONTEM_EMIT_DIR} or "
        f"{settings.DEFAULT_EMIT_DIR})",
    )
    parser.add_argument(
        "--requests", type=_positive, default=200, metavar="N", help="simulated requests (200)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not echo warnings and errors on stderr"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit status is 0 only if every record it produced is on disk."""
    directory = settings.resolve(
        args.dir, settings.PONTEM_EMIT_DIR, settings.UNSET, settings.DEFAULT_EMIT_DIR
    )
    directory = os.path.abspath(os.fspath(directory))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        print(f"pontem-async demo: cannot create {directory}: {exc.strerror}", file=sys.stderr)
        return 1
    return asyncio.run(_main(directory, args.requests, args.quiet))
