"""``pontem-async demo``: the README quick start's "main job", run for real on the embedded default.

It configures the default instance as the README does (``pa.init(service_name=...,
emit_dir=...)``: warnings on stderr, every record in ``<dir>/records.jsonl``), starts a run
(``<dir>/runs/<run_id>``), serves the demo shop (:mod:`pontem_async._demo_app`, instrumented by
the aiohttp integration) on 127.0.0.1 with an ephemeral port, and drives a burst of concurrent
requests at it with aiohttp's client: normal ones, slow searches, checkouts that fail with an
unhandled exception (500) and unknown users (404). Then it shuts the service down (its cleanup
hook shuts the telemetry down), stops the run, reads the JSONL back and prints where the files
are, a table of requests and p50/p95 latency by route, the records written per kind, the
aggregated call tree (``pontem-async tree``'s view) and the top error fingerprints.

Why it checks itself: the demo is also the shortest end-to-end proof of the "nothing is lost"
guarantee. It exits 0 only when every record handed to the file handler is on disk, nothing was
dropped, and every request left exactly one call tree and one request log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import shlex
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

import pontem_async as pa
from pontem_async import _tail, settings
from pontem_async._demo_app import make_app
from pontem_async._tree import render_text
from pontem_async._tree_model import CallTree, InvalidProfile
from pontem_async.encoding.console import line_kind
from pontem_async.events import RUN_FILE_NAME, RUN_ID_ATTRIBUTE
from pontem_async.fingerprint import message_template
from pontem_async.telemetry import default_handlers

__all__ = ["REQUEST_LOGS", "SERVICE_NAME", "SLOW_MS", "add_arguments", "run"]

SERVICE_NAME = "pontem-demo"
SLOW_MS = 150.0
CONCURRENCY = 50
REQUEST_LOGS = ("request handled", "slow request", "request failed")
"""The bodies of the integration's one log per request."""
_KINDS = ("log", "metric", "profile", "event")


def _plan(count: int, rng: random.Random) -> list[str]:
    """The burst's request paths: mostly fast, some slow searches, some failures; the first
    few make sure every outcome shows up even in a short burst."""
    first = ["/checkout?items=12", "/search?q=wide+angle+lens+hood", "/users/13", "/cart"]
    paths = first[:count]
    for _ in range(count - len(paths)):
        roll = rng.random()
        if roll < 0.35:
            items = rng.randint(9, 12) if rng.random() < 0.12 else rng.randint(1, 8)
            paths.append(f"/checkout?items={items}")
        elif roll < 0.55:
            paths.append(f"/cart?session=s{rng.randrange(100)}")
        elif roll < 0.80:
            query = (
                "wide angle lens hood" if rng.random() < 0.15 else rng.choice(("lens", "tripod"))
            )
            paths.append(f"/search?q={query.replace(' ', '+')}")
        else:
            paths.append(f"/users/{rng.randrange(1, 500)}")
    return paths


async def _burst(base: str, paths: list[str]) -> Counter[int]:
    """Every path requested concurrently (at most ``CONCURRENCY`` at a time); statuses."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def get(path: str) -> int:
            async with client.get(base + path) as response:
                await response.read()
                return response.status

        return Counter(await asyncio.gather(*(get(path) for path in paths)))


@dataclass
class _OnDisk:
    """This run's records as read back from the files."""

    total: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    request_logs: int = 0
    tree: CallTree = field(default_factory=CallTree)
    fingerprints: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)


def _read_back(directory: str, run_id: str) -> _OnDisk:
    found = _OnDisk()
    try:
        for data in _tail.read_records(directory, sys.stderr):
            resource = data.get("resource")
            if not isinstance(resource, Mapping) or resource.get(RUN_ID_ATTRIBUTE) != run_id:
                continue  # an earlier run's record in the same files
            found.total += 1
            kind = line_kind(data)
            found.kinds[kind] += 1
            if kind == "profile":
                try:
                    found.tree.add(data)
                except InvalidProfile as exc:
                    print(f"pontem-async demo: invalid call tree: {exc}", file=sys.stderr)
            attributes = data.get("attributes")
            if kind != "log" or not isinstance(attributes, Mapping):
                continue
            if data.get("body") in REQUEST_LOGS:
                found.request_logs += 1
                latency = attributes.get("latency_ms")
                if isinstance(latency, int | float):
                    found.latencies[str(attributes.get("http.route"))].append(float(latency))
            fingerprint = attributes.get("exception.fingerprint")
            if isinstance(fingerprint, str):
                found.fingerprints[fingerprint] += 1
                name = attributes.get("exception.type", "?")
                message = message_template(str(attributes.get("exception.message", "")))
                found.examples.setdefault(fingerprint, f"{name}: {message}")
    except _tail.TailError as exc:
        print(f"pontem-async demo: {exc}", file=sys.stderr)
    return found


def _percentile(values: list[float], p: float) -> float:
    """Nearest rank: always an observed value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
            ]
        )
        for row in rows
    ]


def _summary(
    directory: str,
    run: Mapping[str, Any],
    statuses: Counter[int],
    seconds: float,
    disk: _OnDisk,
    dropped: int,
) -> str:
    requests = sum(statuses.values())
    answered = ", ".join(f"{n} × {code}" for code, n in sorted(statuses.items()))
    lines = [
        f"{SERVICE_NAME}: {requests} concurrent requests served on 127.0.0.1 in {seconds:.2f} s "
        f"({answered})",
        "",
        f"telemetry files in {directory}: {', '.join(sorted(os.listdir(directory)))}",
        f"  run {run['run_id']}: events in {os.path.join(run['run_dir'], RUN_FILE_NAME)}",
        "",
        "requests by route (latency measured by the server, ms):",
    ]
    rows = [["route", "requests", "p50", "p95"]]
    for route, values in sorted(disk.latencies.items()):
        rows.append(
            [
                route,
                str(len(values)),
                f"{_percentile(values, 50):.1f}",
                f"{_percentile(values, 95):.1f}",
            ]
        )
    everything = [v for values in disk.latencies.values() for v in values]
    if everything:
        rows.append(
            ["all", str(len(everything)), f"{_percentile(everything, 50):.1f}",
             f"{_percentile(everything, 95):.1f}"]
        )  # fmt: skip
    lines += _table(rows)
    lines += ["", "records written (this run):"]
    kinds = [[kind, str(disk.kinds.get(kind, 0))] for kind in _KINDS]
    kinds += [[kind, str(n)] for kind, n in sorted(disk.kinds.items()) if kind not in _KINDS]
    lines += _table(
        [["kind", "records"], *kinds, ["total", str(disk.total)], ["dropped", str(dropped)]]
    )
    lines += ["", "call tree (all requests merged; ms):"]
    if disk.tree.roots:
        lines += ["  " + line for line in render_text(disk.tree, "total", 1.0, _box_ok())]
    lines += ["", "top exception fingerprints:"]
    for fingerprint, count in disk.fingerprints.most_common(5):
        lines.append(f"  {count:4d}  {fingerprint[:12]}  {disk.examples[fingerprint]}")
    if not disk.fingerprints:
        lines.append("  (none this run)")
    quoted = shlex.quote(directory)
    lines += ["", f"view them:   pontem-async tail {quoted}"]
    lines.append(f"errors only: pontem-async tail {quoted} --level error")
    lines.append(f"call tree:   pontem-async tree {quoted}")
    return "\n".join(lines)


def _box_ok() -> bool:
    try:
        "├─└│".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


async def _serve_and_drive(telemetry: pa.Telemetry, requests: int) -> tuple[Counter[int], bool]:
    """Serve the shop, run the burst, flush, and shut the service (and telemetry) down."""
    app = make_app(telemetry, slow_ms=SLOW_MS)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()  # on_startup: the pipeline runs on this loop
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        statuses = await _burst(f"http://{host}:{port}", _plan(requests, random.Random()))
        flushed = await telemetry.flush()
    finally:
        await runner.cleanup()  # on_cleanup: telemetry.shutdown() with its deadline
    return statuses, flushed


async def _main(directory: str, requests: int, quiet: bool) -> int:
    handlers = None
    if quiet:  # the embedded default minus its console echo of warnings
        handlers = [h for h in default_handlers(directory, "file") if h.name != "console"]
    telemetry = pa.init(
        service_name=SERVICE_NAME, handlers=handlers, emit_dir=directory, emit_target="file"
    )
    # aiohttp logs each unhandled exception's traceback on its own stdlib logger; the
    # middleware already logged it once, with its fingerprint
    aiohttp_errors = logging.getLogger("aiohttp.server")
    aiohttp_errors.disabled = True
    run = pa.start_run(site_dir=os.path.join(directory, "runs"), meta={"requests": requests})
    started = time.perf_counter()
    try:
        pa.event("demo", {"phase": "burst", "requests": requests, "concurrency": CONCURRENCY})
        statuses, flushed = await _serve_and_drive(telemetry, requests)
    finally:
        aiohttp_errors.disabled = False
        pa.stop_run()
    seconds = time.perf_counter() - started
    stats: dict[str, dict[str, Any]] = telemetry.stats()

    dropped = sum(sum(s.get("dropped", {}).values()) for s in stats.values())
    handed = int(stats.get("file", {}).get("delivered", 0))
    disk = _read_back(directory, run["run_id"])
    print(_summary(directory, run, statuses, seconds, disk, dropped))
    problems = []
    if not flushed:
        problems.append("flush() reported a handler failure or timed out")
    if dropped:
        problems.append(f"{dropped} records dropped: {stats}")
    if disk.total != handed:
        problems.append(f"{handed} records handed to the file handler, {disk.total} on disk")
    if sum(statuses.values()) != requests:
        problems.append(f"{requests} requests sent, {sum(statuses.values())} answered")
    if not disk.kinds["profile"] == disk.request_logs == requests:
        problems.append(
            f"{requests} requests, {disk.kinds['profile']} call trees and "
            f"{disk.request_logs} request logs on disk"
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
        "Serve an instrumented aiohttp shop on 127.0.0.1, drive a burst of concurrent requests "
        "at it, shut it down, then read its JSONL back and summarise it (requests and latency "
        "by route, records per kind, the call tree); exits 0 only if every record reached the "
        "disk. Needs no server besides itself."
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help=f"where to write records.jsonl and runs/ (default: ${settings.PONTEM_EMIT_DIR} or "
        f"{settings.DEFAULT_EMIT_DIR})",
    )
    parser.add_argument(
        "--requests", type=_positive, default=200, metavar="N", help="requests in the burst (200)"
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
