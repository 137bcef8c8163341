"""Benchmark OTLP/HTTP: pontem-async's OTLPHandler against the OpenTelemetry SDK's OTLP/HTTP
exporters (protobuf, and JSON where installed), in one run; run by hand.

    bash bench/run.sh otlp                      # creates bench/.venv, installs, runs all
    bash bench/run.sh otlp --quick              # smoke run
    python bench/bench_otlp.py --records 50000 --rounds 3

Two tables:

1. **Delivered throughput**: log records per second from the first log call to the last answer
   of a local receiver (``flush()``/``force_flush()`` returned and the receiver counted every
   record). Same record for everyone (a message and two attributes), gzip on for everyone,
   512-record batches, queues large enough that nothing is dropped. pontem-async runs
   ``Telemetry`` + ``OTLPHandler(kinds=["log"])`` on an asyncio loop; the SDK runs
   ``LoggerProvider`` + ``BatchLogRecordProcessor`` + ``OTLPLogExporter`` (its worker thread,
   ``requests``). The receiver is a separate process (aiohttp) that decodes every body (JSON
   with orjson, protobuf with opentelemetry-proto) and counts the records.
2. **Encode cost**: ns per log record and per metric data point to build one request body of
   512 records / 1,000 points, no I/O: ``encode_request`` (JSON bytes) against the SDK's
   ``encode_logs``/``encode_metrics`` + ``SerializeToString()`` (protobuf) and + ``to_json()``
   (its JSON encoder), on the SDK's own record objects (made beforehand, not timed).

Every (library, measurement) runs in a fresh subprocess, round-robin over ``--rounds``; the
median is reported. Target: pontem-async's delivered throughput at least the SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _report import load_average, machine, num, run_child, table, versions_of  # noqa: E402

MESSAGE = "request handled"
BATCH = 512
DELIVERY = ("pa", "sdk-proto", "sdk-json")
ENCODE = ("pa", "sdk-proto", "sdk-json")
LABELS = {
    "pa": "pontem-async OTLPHandler (JSON, aiohttp)",
    "sdk-proto": "OTel SDK OTLPLogExporter (protobuf, requests)",
    "sdk-json": "OTel SDK JSON exporter (beta, requests)",
}
PACKAGES = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-json-http",
    "aiohttp",
    "orjson",
)


# ---------------------------------------------------------------------------- the receiver


def receiver(port_file: str) -> None:
    """A local OTLP/HTTP receiver counting the log records of every body it accepts."""
    import gzip

    import orjson
    from aiohttp import web
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    count = {"records": 0, "bodies": 0}

    async def logs(request: web.Request) -> web.Response:
        data = await request.read()  # aiohttp inflates Content-Encoding: gzip itself
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if request.content_type == "application/x-protobuf":
            message = ExportLogsServiceRequest.FromString(data)
            n = sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs)
            answer = web.Response(body=b"", content_type="application/x-protobuf")
        else:
            document = orjson.loads(data)
            n = sum(len(sl["logRecords"]) for rl in document["resourceLogs"]
                    for sl in rl["scopeLogs"])  # fmt: skip
            answer = web.json_response({})
        count["records"] += n
        count["bodies"] += 1
        return answer

    async def other(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({})

    async def counts(request: web.Request) -> web.Response:
        return web.json_response(count)

    async def reset(request: web.Request) -> web.Response:
        count.update(records=0, bodies=0)
        return web.json_response(count)

    async def main() -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/logs", logs)
        app.router.add_post("/v1/{other}", other)
        app.router.add_get("/count", counts)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = str(runner.addresses[0][1])
        await asyncio.to_thread(Path(port_file).write_text, port)
        await asyncio.Event().wait()

    asyncio.run(main())


def received(url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/count", timeout=30) as resp:
        answer: dict[str, int] = json.loads(resp.read())
    return answer


def reset(url: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{url}/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


# ---------------------------------------------------------------------------- delivery


async def deliver_pa(url: str, n: int) -> dict[str, Any]:
    from pontem_async import Telemetry
    from pontem_async.handlers import OTLPHandler

    handler = OTLPHandler(url, name="otlp", kinds=["log"], compression="gzip")
    telemetry = Telemetry(
        "bench", handlers=[handler], install_signal_handlers=False,
        batch_size=BATCH, queue_size=n + 1, flush_interval=0.05,
    )  # fmt: skip
    telemetry.start()
    info = telemetry.logger.info
    started = time.perf_counter()
    for i in range(n):
        info(MESSAGE, k="v", i=i)
        if i % 4096 == 4095:
            await asyncio.sleep(0)  # an application awaits now and then; the consumer runs
    ok = await telemetry.flush(120)
    elapsed = time.perf_counter() - started
    stats = telemetry.stats()["otlp"]
    await telemetry.shutdown(timeout=30)
    return {"seconds": elapsed, "flushed": ok, "dropped": sum(stats["dropped"].values())}


def deliver_sdk(url: str, n: int, encoding: str) -> dict[str, Any]:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    if encoding == "proto":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter: Any = OTLPLogExporter(endpoint=f"{url}/v1/logs", compression=Compression.Gzip)
    else:
        from opentelemetry.exporter.otlp.json.http._log_exporter import (
            OTLPLogExporter as JSONLogExporter,
        )

        exporter = JSONLogExporter(endpoint=f"{url}/v1/logs", compression=_json_gzip())
    provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_queue_size=n + 1, max_export_batch_size=BATCH)
    )
    emit = provider.get_logger("bench").emit
    info = SeverityNumber.INFO
    time_ns = time.time_ns
    started = time.perf_counter()
    for i in range(n):
        emit(timestamp=time_ns(), severity_number=info, severity_text="INFO", body=MESSAGE,
             attributes={"k": "v", "i": i})  # fmt: skip
    ok = provider.force_flush(120_000)
    elapsed = time.perf_counter() - started
    provider.shutdown()
    return {"seconds": elapsed, "flushed": ok, "dropped": 0}


def _json_gzip() -> Any:
    from opentelemetry.exporter.otlp.common.http import Compression

    return Compression.GZIP


# ---------------------------------------------------------------------------- encoding


def _sdk_logs(n: int) -> list[Any]:
    """ReadableLogRecords as the SDK hands them to an exporter."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("bench")
    for i in range(n):
        logger.emit(timestamp=time.time_ns(), severity_number=SeverityNumber.INFO,
                    severity_text="INFO", body=MESSAGE, attributes={"k": "v", "i": i})  # fmt: skip
    return list(memory.get_finished_logs())


def _sdk_metrics(points: int) -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("bench").create_counter("requests")
    for i in range(points):
        counter.add(1, {"route": f"/r{i}", "code": "200"})
    return reader.get_metrics_data()


def _best_ns(func: Any, per: int, repeat: int) -> float:
    """Median ns per item over ``repeat`` timed calls (after two warm-up calls)."""
    func()
    func()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        func()
        samples.append((time.perf_counter_ns() - started) / per)
    return statistics.median(samples)


def encode_cost(library: str, repeat: int) -> dict[str, Any]:
    points = 1000
    if library == "pa":
        from pontem_async.encoding.otlp import encode_request
        from pontem_async.records import LogRecord, MetricPoint, MetricRecord

        resource = {"service.name": "bench"}
        logs = [LogRecord(time.time_ns(), 9, MESSAGE, {"k": "v", "i": i}, "bench", resource)
                for i in range(BATCH)]  # fmt: skip
        start = time.time_ns()
        metric = MetricRecord(time.time_ns(), "requests", "counter", "", "", tuple(
            MetricPoint({"route": f"/r{i}", "code": "200"}, start, 1.0) for i in range(points)
        ), resource)  # fmt: skip
        log_ns = _best_ns(lambda: encode_request("logs", logs), BATCH, repeat)
        metric_ns = _best_ns(lambda: encode_request("metrics", [metric]), points, repeat)
        size = len(encode_request("logs", logs) or b"")
    else:
        batch, data = _sdk_logs(BATCH), _sdk_metrics(points)
        if library == "sdk-proto":
            from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
            from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

            log_ns = _best_ns(lambda: encode_logs(batch).SerializeToString(), BATCH, repeat)
            metric_ns = _best_ns(lambda: encode_metrics(data).SerializeToString(), points, repeat)
            size = len(encode_logs(batch).SerializeToString())
        else:
            from opentelemetry.exporter.otlp.json.common._log_encoder import (
                encode_logs as encode_logs_json,
            )
            from opentelemetry.exporter.otlp.json.common.metrics_encoder import (
                encode_metrics as encode_metrics_json,
            )

            log_ns = _best_ns(lambda: encode_logs_json(batch).to_json().encode(), BATCH, repeat)
            metric_ns = _best_ns(
                lambda: encode_metrics_json(data).to_json().encode(), points, repeat
            )
            size = len(encode_logs_json(batch).to_json().encode())
    return {"log_ns": log_ns, "point_ns": metric_ns, "body_bytes_512_logs": size}


# ---------------------------------------------------------------------------- child entry


def child(kind: str, library: str, workdir: str, result: str, params_text: str) -> None:
    params = json.loads(params_text)
    if kind == "encode":
        out = encode_cost(library, params["repeat"])
    else:
        url, n = params["url"], params["records"]
        reset(url)
        if library == "pa":
            out = asyncio.run(deliver_pa(url, n))
        else:
            out = deliver_sdk(url, n, library.split("-", 1)[1])
        got = received(url)
        out.update(received=got["records"], bodies=got["bodies"], records=n)
        out["per_second"] = n / out["seconds"] if got["records"] == n else 0.0
    Path(result).write_text(json.dumps(out))


# ---------------------------------------------------------------------------- orchestration


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--records", type=int, default=None, help="log records per delivery run")
    parser.add_argument("--rounds", type=int, default=None, help="repeats, round-robin")
    parser.add_argument("--only", default=None, help=f"comma-separated, from {', '.join(DELIVERY)}")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per subprocess")
    args = parser.parse_args(argv)
    args.records = args.records or (20_000 if args.quick else 100_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.keys = list(DELIVERY) if args.only is None else args.only.split(",")
    return args


def available(library: str) -> bool:
    module = {
        "pa": "pontem_async.handlers.otlp",
        "sdk-proto": "opentelemetry.exporter.otlp.proto.http._log_exporter",
        "sdk-json": "opentelemetry.exporter.otlp.json.http._log_exporter",
    }[library]
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return proc.returncode == 0


def median(runs: list[dict[str, Any]], field: str) -> float | None:
    values = [r[field] for r in runs if "error" not in r and r.get(field)]
    return statistics.median(values) if values else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    keys = [k for k in args.keys if available(k)]
    missing = sorted(set(args.keys) - set(keys))
    root = Path(tempfile.mkdtemp(prefix="pontem-bench-otlp-"))
    port_file = root / "port"
    server = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        delivery: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        encoding: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        for round_no in range(1, args.rounds + 1):
            for key in keys:
                for kind, store, params in (
                    ("deliver", delivery, {"url": url, "records": args.records}),
                    ("encode", encoding, {"repeat": 5 if args.quick else 30}),
                ):
                    label = f"round {round_no}/{args.rounds}  {kind} {key}"
                    print(f"  {label:<36}", end="", file=sys.stderr, flush=True)
                    outcome = run_child(
                        "bench_otlp.py", ["--child", kind, key], f"{kind}-{key}", params, root,
                        args.timeout,
                    )  # fmt: skip
                    store[key].append(outcome)
                    shown = outcome.get("error") or (
                        f"{num(outcome['per_second'])} records/s" if kind == "deliver"
                        else f"{outcome['log_ns']:,.0f} ns/log, {outcome['point_ns']:,.0f} ns/point"
                    )  # fmt: skip
                    print(f" {outcome['wall']:5.1f}s  {shown}", file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    print(report(args, keys, missing, delivery, encoding))
    return 0


def report(
    args: argparse.Namespace,
    keys: list[str],
    missing: list[str],
    delivery: dict[str, list[dict[str, Any]]],
    encoding: dict[str, list[dict[str, Any]]],
) -> str:
    host = machine()
    lines = [
        "# OTLP/HTTP: pontem-async vs the OpenTelemetry SDK",
        "",
        f"{host['cpu']}, {host['cores']} cores, {host['memory']}; {host['python']}; "
        f"load average {load_average()}",
        "",
        ", ".join(f"{k} {v}" for k, v in versions_of(PACKAGES).items()),
        "",
        "## Delivered throughput (log records, gzip, 512-record batches)",
        "",
        f"{num(args.records)} records per run, median of {args.rounds} round(s), each in a "
        "fresh process; from the first log call until the receiver answered the last body.",
        "",
    ]
    pa_rate = median(delivery.get("pa", []), "per_second")
    rows = []
    for key in keys:
        rate = median(delivery[key], "per_second")
        runs = [r for r in delivery[key] if "error" not in r]
        bodies = statistics.median([r["bodies"] for r in runs]) if runs else 0
        rows.append([
            LABELS[key], num(rate) if rate else "error",
            f"{pa_rate / rate:.2f}x" if rate and pa_rate else "—", num(bodies),
        ])  # fmt: skip
    lines.append(table(["exporter", "records/s", "pontem-async's rate is", "requests"], rows))
    lines.append("")
    sdk = [median(delivery[k], "per_second") for k in keys if k != "pa"]
    best_sdk = max((r for r in sdk if r), default=None)
    if pa_rate and best_sdk:
        verdict = "met" if pa_rate >= best_sdk else "MISSED"
        lines.append(
            f"target (at least the SDK's throughput): {verdict}, {pa_rate / best_sdk:.2f}x the "
            "fastest SDK exporter."
        )
    lines += ["", "## Encode cost (one body: 512 log records, 1,000 metric points)", ""]
    pa_enc = {f: median(encoding.get("pa", []), f) for f in ("log_ns", "point_ns")}
    rows = []
    for key in keys:
        log_ns, point_ns = median(encoding[key], "log_ns"), median(encoding[key], "point_ns")
        size = median(encoding[key], "body_bytes_512_logs")
        rows.append([
            LABELS[key], f"{log_ns:,.0f}" if log_ns else "error",
            f"{log_ns / pa_enc['log_ns']:.2f}x" if log_ns and pa_enc["log_ns"] else "—",
            f"{point_ns:,.0f}" if point_ns else "error",
            f"{point_ns / pa_enc['point_ns']:.2f}x" if point_ns and pa_enc["point_ns"] else "—",
            num(size) if size else "—",
        ])  # fmt: skip
    lines.append(table(
        ["encoder", "ns/log record", "vs pontem-async", "ns/metric point", "vs pontem-async",
         "bytes/512 logs"], rows,
    ))  # fmt: skip
    if missing:
        lines += ["", f"not measured (not installed): {', '.join(missing)}"]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--receiver":
        receiver(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
    else:
        sys.exit(main())
