"""Process exit: what was queued reaches the disk on SIGTERM, SIGINT and a plain exit.

Each case is a real subprocess writing through the real RotatingFileHandler; the records are
counted on disk afterwards.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

N = 10_000

SYNC_SCRIPT = """
import sys, time
import pontem_async as pa
from pontem_async.handlers import RotatingFileHandler

pa.init(
    service_name="exit-test",
    handlers=[RotatingFileHandler(sys.argv[1], max_bytes=1 << 30, compress=False)],
    batch_size=256, flush_interval=30, overflow="block", queue_size=20_000,
)
for i in range({n}):
    pa.logger.info("record", i=i)
print("ready", flush=True)
while sys.argv[2] == "wait":  # short sleeps: CPython 3.11 can lose a signal that arrives
    time.sleep(0.05)           # while another thread runs, until the main thread next wakes
"""

ASYNC_SCRIPT = """
import asyncio, sys
import pontem_async as pa
from pontem_async.handlers import RotatingFileHandler

async def main():
    pa.init(
        service_name="exit-test",
        handlers=[RotatingFileHandler(sys.argv[1], max_bytes=1 << 30, compress=False)],
        batch_size=256, flush_interval=30, queue_size=20_000,
    )
    for i in range({n}):
        pa.logger.info("record", i=i)
    print("ready", flush=True)
    if sys.argv[2] == "wait":
        await asyncio.sleep(120)

asyncio.run(main())
"""


def _start(tmp_path: Path, script: str, mode: str) -> tuple[subprocess.Popen[str], Path]:
    path = tmp_path / "records.jsonl"
    code = textwrap.dedent(script).format(n=N)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, path


def _ids_on_disk(path: Path) -> list[int]:
    return [orjson.loads(line)["attributes"]["i"] for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("script", [SYNC_SCRIPT, ASYNC_SCRIPT], ids=["sync", "asyncio"])
def test_sigterm_delivers_everything_queued(tmp_path: Path, script: str) -> None:
    proc, path = _start(tmp_path, script, "wait")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert sorted(_ids_on_disk(path)) == list(range(N))


@pytest.mark.parametrize("script", [SYNC_SCRIPT, ASYNC_SCRIPT], ids=["sync", "asyncio"])
def test_sigint_delivers_everything_queued(tmp_path: Path, script: str) -> None:
    proc, path = _start(tmp_path, script, "wait")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert sorted(_ids_on_disk(path)) == list(range(N))


@pytest.mark.parametrize("script", [SYNC_SCRIPT, ASYNC_SCRIPT], ids=["sync", "asyncio"])
def test_plain_exit_without_shutdown_delivers_everything(tmp_path: Path, script: str) -> None:
    proc, path = _start(tmp_path, script, "exit")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sorted(_ids_on_disk(path)) == list(range(N))


def test_sigterm_handler_of_the_application_is_left_alone(tmp_path: Path) -> None:
    script = """
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *a: (print("app handler", flush=True), sys.exit(3)))
    import pontem_async as pa
    from pontem_async.handlers import RotatingFileHandler
    pa.init(service_name="x", handlers=[RotatingFileHandler(sys.argv[1], compress=False)])
    pa.logger.info("record", i=0)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
    """
    proc, path = _start(tmp_path, script, "wait")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "app handler" in out
    assert _ids_on_disk(path) == [0]  # sys.exit ran atexit, which delivered the record


LOST_CANCEL_SCRIPT = """
import asyncio

import pontem_async as pa

pa.profiler.dict_config({
    "job": "billing",
    "handle_records": True,
    "handlers": {"stdout": {
        "class": "phanos.handlers.StreamHandler", "handler_name": "stdout",
        "output": "ext://sys.stdout",
    }},
})


@pa.profile
async def child():
    await asyncio.sleep(0.001)


@pa.profile
async def root():
    await child()


async def main():
    await asyncio.gather(*(root() for _ in range(4)))


asyncio.run(main())
"""


def test_asyncio_run_returns_when_its_teardown_cancellation_gets_lost(tmp_path: Path) -> None:
    """phanos' setup at import, roots in gather tasks: the consumers' cancellation at
    ``asyncio.run`` teardown can get lost in CPython 3.11's ``wait_for`` (an emit finishing in
    the same iteration); the consumer must notice, deliver, and end, not sleep forever."""
    result = subprocess.run(
        [sys.executable, "-c", LOST_CANCEL_SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("PROFILE") == 4
