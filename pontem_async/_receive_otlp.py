"""``pontem-async receive-otlp``: a local OTLP/HTTP receiver that writes what it gets as JSONL.

Why: to see exactly what :class:`~pontem_async.handlers.OTLPHandler` sends without running an
OpenTelemetry collector. It accepts OTLP/HTTP **JSON** requests (gzipped or not) on
``/v1/logs``, ``/v1/metrics`` and ``/v1/traces`` and appends each request body, as one JSON
line, to ``logs.jsonl``, ``metrics.jsonl`` or ``traces.jsonl`` under ``--out``. It answers as a
collector does: ``200`` with an empty ``partialSuccess`` for a JSON object, ``400`` with a
``google.rpc.Status`` message for a body that is not one, ``415`` for protobuf (not supported
here). It checks JSON syntax only, not the OTLP schema: it shows what arrived, good or bad.

``--port 0`` picks a free port; the first line printed on stdout says which
(``receive-otlp: listening on http://127.0.0.1:PORT``). It stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import signal
import sys
from pathlib import Path
from typing import IO

import orjson
from aiohttp import web

__all__ = ["SIGNALS", "add_arguments", "make_app", "run"]

SIGNALS = ("logs", "metrics", "traces")
_MAX_BODY = 64 * 1024 * 1024


class _Sink:
    """The three JSONL files, opened on first use and flushed after every line."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[str, IO[bytes]] = {}
        self.counts = dict.fromkeys(SIGNALS, 0)

    def write(self, signal_name: str, document: object) -> None:
        file = self.files.get(signal_name)
        if file is None:
            file = self.files[signal_name] = open(  # noqa: SIM115 - kept open across requests
                self.directory / f"{signal_name}.jsonl", "ab"
            )
        file.write(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
        file.flush()
        self.counts[signal_name] += 1

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        self.files.clear()


_SINK = web.AppKey("sink", _Sink)


def _status(code: int, grpc_code: int, message: str) -> web.Response:
    return web.json_response({"code": grpc_code, "message": message}, status=code)


def make_app(directory: Path) -> web.Application:
    """The receiver as an aiohttp application writing under ``directory`` (which must exist)."""
    sink = _Sink(directory)

    async def receive(request: web.Request) -> web.Response:
        signal_name = request.match_info["signal"]
        if signal_name not in SIGNALS:
            expected = "expected /v1/logs, /v1/metrics or /v1/traces"
            return _status(404, 5, f"unknown path {request.path}; {expected}")
        content_type = request.content_type
        if content_type != "application/json":
            return _status(
                415, 3, f"only OTLP/JSON (application/json) is accepted, not {content_type}"
            )
        data = await request.read()  # aiohttp inflates a gzip Content-Encoding itself
        if data[:2] == b"\x1f\x8b":  # gzip without the header saying so
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                return _status(400, 3, f"bad gzip body: {exc}")
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return _status(400, 3, f"body is not JSON: {exc}")
        if not isinstance(document, dict):
            return _status(400, 3, "body must be a JSON object (an Export*ServiceRequest)")
        sink.write(signal_name, document)
        return web.json_response({"partialSuccess": {}})

    async def close_sink(app: web.Application) -> None:
        sink.close()

    app = web.Application(client_max_size=_MAX_BODY)
    app.router.add_post("/v1/{signal}", receive)
    app.on_cleanup.append(close_sink)
    app[_SINK] = sink
    return app


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``receive-otlp``'s arguments on its subparser."""
    parser.description = (
        "Receive OTLP/HTTP JSON (gzip too) on /v1/logs, /v1/metrics and /v1/traces and append "
        "each request body as a JSON line to OUT/logs.jsonl, metrics.jsonl or traces.jsonl."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=_port, default=4318, help="port (default 4318; 0 picks a free one)")
    add("--out", required=True, metavar="DIR", help="directory of the JSONL files (created)")
    parser.set_defaults(run=run)


async def _serve(host: str, port: int, directory: Path) -> int:
    app = make_app(directory)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"pontem-async receive-otlp: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    print(f"receive-otlp: listening on http://{shown}:{bound}, writing {directory}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        counts = app[_SINK].counts
        await runner.cleanup()
        summary = ", ".join(f"{name}: {n}" for name, n in counts.items())
        print(f"receive-otlp: stopped; requests received ({summary})", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; the exit status is 1 if the port or directory is unusable."""
    directory = Path(args.out)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"pontem-async receive-otlp: cannot create {directory}: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(_serve(args.host, args.port, directory))
