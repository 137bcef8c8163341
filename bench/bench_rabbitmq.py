"""Benchmark RabbitMQ fan-out: pontem-async's RabbitMQHandler against phanos' AsyncImpProfHandler,
on the same broker, in one run; run by hand.

    bash bench/run.sh rabbitmq                  # creates bench/.venv, installs, runs both
    bash bench/run.sh rabbitmq --quick          # smoke run
    python bench/bench_rabbitmq.py --calls 30000 --phanos-calls 3000

The workload is the same for both: an async root function that awaits two profiled children
(each ``await asyncio.sleep(0)``), called in sequence on the application's event loop. Each
library ships the call trees the way it does in production:

- **pontem-async**: ``@pa.profile`` + ``RabbitMQHandler`` (``kinds=["profile"]``): one profile
  record (the whole call tree) per root call, batched by the pipeline, one message per batch,
  publisher confirms, ``await telemetry.flush()`` at the end (everything confirmed).
- **phanos**: ``@phanos.profile`` + ``AsyncImpProfHandler`` (``profiler.async_config``): one
  record per profiled call (3 per root call), and at the end of every root call one message
  with that flush's records, published with confirms before the root call returns.

Each library runs in its own fresh producer process (``--child``), which starts its own
consumer process (``--consumer``, plain aio-pika) bound to a fresh exchange before the first
call. Reported per library: root calls per second published (first call to last confirm) and
received by the consumer (first call to last message), records and messages sent, and the
producer loop's lag while publishing (a 1 ms ticker: how late it woke up; max and p99). Targets:
pontem-async at least 10x phanos' rate, and the loop never blocked longer than 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _report import load_average, machine, num, run_child, table, versions_of  # noqa: E402

LIBRARIES = ("pa", "phanos")
LABELS = {"pa": "pontem-async RabbitMQHandler", "phanos": "phanos AsyncImpProfHandler"}
URL = "amqp://guest:guest@127.0.0.1:5672/"
TARGET_RATIO, TARGET_LAG_MS = 10.0, 5.0


# ---------------------------------------------------------------------------- the consumer


async def consume(exchange: str, durable: bool, expected: int, ready_path: str) -> dict[str, Any]:
    """Count records arriving on a queue bound to ``exchange`` until ``expected``."""
    import aio_pika
    import orjson

    connection = await aio_pika.connect(URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=256)
    ex = await channel.declare_exchange(exchange, "fanout", durable=durable)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(ex)
    await asyncio.to_thread(Path(ready_path).write_text, "ready")
    records = messages = 0
    last = time.time()
    async with queue.iterator(no_ack=True) as iterator:
        async for message in iterator:
            messages += 1
            if message.content_type == "application/x-ndjson":
                records += message.body.count(b"\n")
            else:  # phanos: a JSON array of records
                records += len(orjson.loads(message.body))
            last = time.time()
            if records >= expected:
                break
    await ex.delete()
    await connection.close()
    return {"records": records, "messages": messages, "last_received": last}


# ---------------------------------------------------------------------------- the producers


class LagMonitor:
    """A 1 ms ticker on the loop: how much later than asked it wakes is how long something
    else held the loop."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, loop.time() - before - 0.001))

    async def stop(self) -> dict[str, float]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        lags = sorted(self.lags) or [0.0]
        return {
            "lag_max_ms": lags[-1] * 1000,
            "lag_p99_ms": lags[int(len(lags) * 0.99) - 1 if len(lags) > 1 else 0] * 1000,
            "lag_samples": len(lags),
        }


async def run_pa(exchange: str, calls: int) -> dict[str, Any]:
    import pontem_async as pa
    from pontem_async.handlers import RabbitMQHandler

    handler = RabbitMQHandler(URL, exchange, name="fanout", kinds=["profile"])
    telemetry = pa.Telemetry(
        "bench", handlers=[handler], install_signal_handlers=False, queue_size=calls + 1000
    )
    telemetry.start()
    profiler = pa.Profiler(telemetry)

    @profiler.profile
    async def child() -> None:
        await asyncio.sleep(0)

    @profiler.profile
    async def root() -> None:
        await child()
        await child()

    await handler.open()  # connected before the clock starts, as phanos' create() is
    monitor = LagMonitor()
    monitor.start()
    started = time.time()
    for _ in range(calls):
        await root()
    confirmed = await telemetry.flush(120)
    published = time.time()
    lag = await monitor.stop()
    stats = telemetry.stats()["fanout"]
    await telemetry.shutdown(timeout=30)
    return {
        "started": started,
        "published": published,
        "confirmed": confirmed,
        "records_sent": stats["handler"]["published_records"],
        "messages_sent": stats["handler"]["published_messages"],
        "dropped": stats["dropped"],
        "expected": calls,
        **lag,
    }


async def run_phanos(exchange: str, calls: int) -> dict[str, Any]:
    import phanos
    from phanos.publisher import AsyncImpProfHandler

    profiler = phanos.profiler
    profiler.async_config(job="bench", time_profile=True)
    handler = await AsyncImpProfHandler.create("imp", exchange_name=exchange)
    profiler.add_handler(handler)

    @phanos.profile
    async def child() -> None:
        await asyncio.sleep(0)

    @phanos.profile
    async def root() -> None:
        await child()
        await child()

    monitor = LagMonitor()
    monitor.start()
    started = time.time()
    for _ in range(calls):
        await root()  # returns after its records were published and confirmed
    published = time.time()
    lag = await monitor.stop()
    await handler.publisher.close()
    return {
        "started": started,
        "published": published,
        "confirmed": True,
        "records_sent": calls * 3,
        "messages_sent": None,  # one per root call: counted by the consumer
        "dropped": {},
        "expected": calls * 3,
        **lag,
    }


def child_main(library: str, workdir: str, result_path: str, params: dict[str, Any]) -> int:
    exchange = f"bench-{library}-{uuid.uuid4().hex[:8]}"
    calls = params["calls"]
    expected = calls if library == "pa" else calls * 3
    ready = Path(workdir) / "ready"
    consumer_result = Path(workdir) / "consumer.json"
    consumer = subprocess.Popen(
        [sys.executable, __file__, "--consumer", exchange, str(library == "pa"), str(expected),
         str(ready), str(consumer_result)],
    )  # fmt: skip
    deadline = time.time() + 30
    while not ready.exists():
        if time.time() > deadline or consumer.poll() is not None:
            consumer.kill()
            raise SystemExit("the consumer did not start")
        time.sleep(0.01)
    runner = run_pa if library == "pa" else run_phanos
    result = asyncio.run(runner(exchange, calls))
    consumer.wait(timeout=300)
    received = json.loads(consumer_result.read_text())
    if result["messages_sent"] is None:
        result["messages_sent"] = received["messages"]
    result.update(
        received_records=received["records"],
        received_messages=received["messages"],
        last_received=received["last_received"],
        calls=calls,
    )
    Path(result_path).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------- the report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30_000, help="pontem-async root calls")
    parser.add_argument("--phanos-calls", type=int, default=3_000, help="phanos root calls")
    parser.add_argument("--rounds", type=int, default=3, help="runs per library (median kept)")
    parser.add_argument("--quick", action="store_true", help="smoke run (small counts, 1 round)")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(LIBRARIES))
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.phanos_calls, args.rounds = 3000, 300, 1
    args.libraries = [x for x in (args.only or ",".join(LIBRARIES)).split(",") if x]
    return args


def rates(run: dict[str, Any]) -> dict[str, float]:
    calls = run["calls"]
    publish = run["published"] - run["started"]
    receive = run["last_received"] - run["started"]
    per_call = run["expected"] / calls
    return {
        "published_calls": calls / publish,
        "received_calls": run["received_records"] / per_call / receive,
        "received_records": run["received_records"] / receive,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-rabbitmq-"))
    runs: dict[str, list[dict[str, Any]]] = {lib: [] for lib in args.libraries}
    for round_ in range(args.rounds):
        for lib in args.libraries:
            calls = args.calls if lib == "pa" else args.phanos_calls
            print(f"round {round_ + 1}/{args.rounds}: {lib} ({calls} calls)", file=sys.stderr)
            result = run_child(
                "bench_rabbitmq.py", ["--child", lib], f"{lib}-{round_}", {"calls": calls},
                root, timeout=600,
            )  # fmt: skip
            if "error" in result:
                print(f"  {lib}: {result['error']}", file=sys.stderr)
                continue
            runs[lib].append(result)
    info = machine()
    print("# RabbitMQ fan-out: published with confirms and received by a consumer\n")
    print(f"{info['cpu']}, {info['cores']} cores, {info['memory']}; {info['python']}; "
          f"load {load_average()}")  # fmt: skip
    versions = versions_of(["pontem-async", "phanos", "aio-pika", "aiormq"])
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"broker: RabbitMQ on 127.0.0.1:5672; median of {args.rounds} round(s)\n")
    rows, medians = [], {}
    for lib, results in runs.items():
        if not results:
            rows.append([LABELS[lib], "failed", "", "", "", "", "", ""])
            continue
        per_run = [rates(r) for r in results]
        med = {k: statistics.median(p[k] for p in per_run) for k in per_run[0]}
        medians[lib] = med
        worst_lag = max(r["lag_max_ms"] for r in results)
        p99 = statistics.median(r["lag_p99_ms"] for r in results)
        last = results[-1]
        rows.append([
            LABELS[lib], num(last["calls"]),
            f"{num(last['records_sent'])} / {num(last['messages_sent'])}",
            num(med["published_calls"]), num(med["received_calls"]), num(med["received_records"]),
            f"{worst_lag:.2f}", f"{p99:.2f}",
        ])  # fmt: skip
        if any(r["dropped"] for r in results) or any(not r["confirmed"] for r in results):
            print(f"WARNING: {lib}: drops or unconfirmed: {[r['dropped'] for r in results]}")
    print(table(
        ["library", "root calls", "records / messages sent", "calls/s published",
         "calls/s received", "records/s received", "max loop lag ms", "p99 lag ms"],
        rows,
    ))  # fmt: skip
    if "pa" in medians and "phanos" in medians:
        ratio = medians["pa"]["received_calls"] / medians["phanos"]["received_calls"]
        record_ratio = medians["pa"]["received_records"] / medians["phanos"]["received_records"]
        worst = max(r["lag_max_ms"] for r in runs["pa"])
        print(
            f"\npontem-async vs phanos: {ratio:.1f}x the profiled calls per second received "
            f"(target >= {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); "
            f"{record_ratio:.1f}x the records per second (a pontem-async record is a whole call "
            f"tree, a phanos record one call). pontem-async's loop was never blocked longer than "
            f"{worst:.2f} ms (target {TARGET_LAG_MS:.0f} ms: "
            f"{'met' if worst <= TARGET_LAG_MS else 'NOT met'})."
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--consumer":
        exchange, durable, expected, ready_path, out = sys.argv[2:7]
        found = asyncio.run(consume(exchange, durable == "True", int(expected), ready_path))
        Path(out).write_text(json.dumps(found))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])))
    sys.exit(main())
