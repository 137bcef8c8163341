"""The ``pontem-async`` command: ``tail`` (rotated sets, filters, follow) and ``demo`` (the main
job, end to end on the embedded default), plus the console rendering of JSON lines they share.

Fast cases call ``pontem_async.cli.main`` in-process; the exact process behaviour (``python -m``,
exit statuses, ``--follow``, the demo, which reconfigures the default instance) runs in a
subprocess.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from pontem_async import Telemetry, _demo, _tail
from pontem_async.cli import main
from pontem_async.encoding.console import render_line, render_record, use_color
from pontem_async.encoding.jsonl import encode_line, register_kind
from pontem_async.handlers.file import RotatingFileHandler
from pontem_async.records import Level, LogRecord, Record

T0 = 1_795_431_600_123_000_000  # 2026-11-23T11:00:00.123Z
DEADLINE = 30.0  # seconds a subprocess may take to show a line; generous on purpose


def log_record(
    i: int, severity: int = Level.INFO, body: str | None = None, **attrs: Any
) -> LogRecord:
    return LogRecord(
        T0 + i * 1_000_000,
        severity,
        body or f"event {i}",
        {"i": i, **attrs},
        "app",
        {"service.name": "svc"},
    )


def write(path: Path, lines: Sequence[bytes | LogRecord], *, gz: bool = False) -> None:
    data = b"".join(line if isinstance(line, bytes) else encode_line(line) for line in lines)
    path.write_bytes(gzip.compress(data) if gz else data)


def rendered(records: Sequence[Record]) -> list[str]:
    return [render_record(record) for record in records]


@pytest.fixture
def rotated_set(tmp_path: Path) -> list[LogRecord]:
    """records.jsonl.2.gz (oldest), records.jsonl.1.gz, records.jsonl (current)."""
    records = [log_record(i, Level.WARN if i % 3 == 0 else Level.INFO) for i in range(9)]
    write(tmp_path / "records.jsonl.2.gz", records[0:3], gz=True)
    write(tmp_path / "records.jsonl.1.gz", records[3:6], gz=True)
    write(tmp_path / "records.jsonl", records[6:9])
    return records


def run_tail(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    status = main(["tail", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    env.pop("NO_COLOR", None)
    return env


# ---------------------------------------------------------------------------- rendering


def test_render_line_renders_a_log_line_exactly_like_render_record() -> None:
    record = LogRecord(
        T0, Level.WARN, "two\nlines",
        {"user": "ada lovelace", "n": 3, "ratio": 0.5, "ok": True, "none": None,
         "tags": ["a", "b"], "nested": {"k": 1}, "exception.stacktrace": "Traceback ..."},
        "app.db", {"service.name": "svc"},
    )  # fmt: skip
    data = orjson.loads(encode_line(record))
    assert render_line(data) == (
        '2026-11-23T11:00:00.123Z WARN  two\\nlines logger=app.db user="ada lovelace" n=3 '
        'ratio=0.5 ok=true none=null tags=["a","b"] nested={"k":1}'
    )
    for color in (False, True):
        assert render_line(data, color=color) == render_record(record, color=color)


class _Ping(Record):
    __slots__ = ()
    kind: ClassVar[str] = "cli-test-ping"


register_kind(
    "cli-test-ping", lambda r: {"kind": r.kind, "timeUnixNano": r[0], "name": "ping", "n": r[1]}
)


def test_render_line_renders_other_kinds_as_time_kind_pairs() -> None:
    ping = _Ping((T0, 7))
    data = orjson.loads(encode_line(ping))
    assert render_line(data) == "2026-11-23T11:00:00.123Z CLI-TEST-PING name=ping n=7"
    assert render_line(data) == render_record(ping)
    assert render_line(data, color=True) == render_record(ping, color=True)


def test_render_line_copes_with_lines_from_other_writers() -> None:
    assert render_line({}) == "- RECORD"
    assert render_line({"severityText": "warning", "body": "x"}) == "- WARN  x"
    assert render_line({"timestamp": T0 / 1e9, "severityNumber": 99, "body": {"a": 1}}) == (
        '2026-11-23T11:00:00.123Z -     {"a":1}'
    )
    assert render_line({"kind": "log", "timeUnixNano": 10**30, "attributes": [1]}) == "- -"


def test_console_lines_escape_control_characters_from_any_field() -> None:
    record = LogRecord(T0, Level.INFO, "clear\x1b[2J", {"k\x1b": "v\x9b", "j": ["\x9b"]}, "l\nx")
    line = render_record(record)
    assert line == (
        '2026-11-23T11:00:00.123Z INFO  clear\\x1b[2J logger=l\\nx k\\x1b=v\\x9b j=["\\u009b"]'
    )
    assert render_line(orjson.loads(encode_line(record))) == line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_use_color_only_on_a_tty_and_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert (use_color(_Tty()), use_color(io.StringIO())) == (True, False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(_Tty()) is False


# ---------------------------------------------------------------------------- file sets


def test_expand_orders_rotated_siblings_oldest_first_and_prefers_finished_plain_files(
    tmp_path: Path,
) -> None:
    for name in ("records.jsonl", "records.jsonl.1", "records.jsonl.1.gz", "records.jsonl.10.gz",
                 "records.jsonl.2.gz", "records.jsonl.3.gz.tmp", "other.txt"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    base = str(tmp_path / "records.jsonl")
    expected = _tail.FileSet((f"{base}.10.gz", f"{base}.2.gz", f"{base}.1"), base)
    assert _tail.expand(str(tmp_path)) == [expected]
    assert _tail.expand(base) == [expected]
    assert _tail.expand(f"{base}.2.gz") == [_tail.FileSet((f"{base}.2.gz",), None)]
    (tmp_path / "records.jsonl").unlink()  # just rotated, the new file is not there yet
    assert _tail.expand(base) == [expected]


# ---------------------------------------------------------------------------- tail


def test_tail_directory_prints_the_rotated_set_in_chronological_order(
    tmp_path: Path, rotated_set: list[LogRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_tail(capsys, str(tmp_path)) == (0, rendered(rotated_set), "")


def test_tail_base_name_expands_to_its_rotated_siblings(
    tmp_path: Path, rotated_set: list[LogRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_tail(capsys, str(tmp_path / "records.jsonl")) == (0, rendered(rotated_set), "")


def test_tail_runs_as_python_m_pontem_async(tmp_path: Path, rotated_set: list[LogRecord]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pontem_async", "tail", str(tmp_path)],
        capture_output=True, text=True, env=child_env(), timeout=60, check=False,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout.splitlines(), proc.stderr) == (
        0, rendered(rotated_set), ""
    )  # fmt: skip


@pytest.mark.asyncio
async def test_tail_reads_what_the_real_rotating_file_handler_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = RotatingFileHandler(tmp_path / "records.jsonl", max_bytes=600, backup_count=100)
    telemetry = Telemetry(
        "svc", handlers=[handler], batch_size=3, flush_interval=0.01, install_signal_handlers=False
    )
    telemetry.start()
    for i in range(30):
        telemetry.get_logger("app").info(f"event {i}", i=i)
    await telemetry.shutdown()
    assert len([name for name in os.listdir(tmp_path) if name.endswith(".gz")]) > 3
    status, lines, err = run_tail(capsys, str(tmp_path))
    assert (status, err) == (0, "")
    assert [line.split(maxsplit=2)[1:] for line in lines] == [
        ["INFO", f"event {i} logger=app i={i}"] for i in range(30)
    ]


def test_tail_lines_prints_the_last_n_records(
    tmp_path: Path, rotated_set: list[LogRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_tail(capsys, "-n", "4", str(tmp_path)) == (0, rendered(rotated_set[-4:]), "")
    assert run_tail(capsys, "--lines", "0", str(tmp_path)) == (0, [], "")


def test_tail_filters_by_kind_level_and_body_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = [
        log_record(0, Level.DEBUG, "cache miss"),
        log_record(1, Level.WARN, "slow request"),
        log_record(2, Level.ERROR, "request failed"),
    ]
    ping = _Ping((T0, 1))
    write(tmp_path / "records.jsonl", [*logs[:2], encode_line(ping), logs[2]])
    path = str(tmp_path / "records.jsonl")
    assert run_tail(capsys, "--kind", "log", path) == (0, rendered(logs), "")
    assert run_tail(capsys, "--level", "warn", path) == (0, rendered(logs[1:]), "")
    assert run_tail(capsys, "--level", "warning", path) == (0, rendered(logs[1:]), "")
    assert run_tail(capsys, "--level", "17", path) == (0, rendered(logs[2:]), "")
    assert run_tail(capsys, "--grep", "request", path) == (0, rendered(logs[1:]), "")
    assert run_tail(capsys, "--grep", "request", "--level", "error", path) == (
        0, rendered(logs[2:]), ""
    )  # fmt: skip


def test_tail_kind_is_repeatable_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "records.jsonl", [log_record(0)])
    path = str(tmp_path / "records.jsonl")
    assert run_tail(capsys, "--kind", "metric", "--kind", "event", path) == (0, [], "")
    with pytest.raises(SystemExit) as exc:
        main(["tail", "--kind", "logs", path])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["tail", "--level", "loud", path])
    assert "argument --level: expected one of trace, debug" in capsys.readouterr().err


def test_tail_json_passes_matching_lines_through_unchanged(
    tmp_path: Path, rotated_set: list[LogRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = [encode_line(r).decode().rstrip("\n") for r in rotated_set if r.severity >= 13]
    assert run_tail(capsys, "--json", "--level", "warn", str(tmp_path)) == (0, expected, "")


def test_tail_reports_invalid_lines_with_file_and_line_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [log_record(0), log_record(1), log_record(2)]
    path = tmp_path / "records.jsonl"
    write(path, [good[0], b"not json\n", b"[1, 2]\n", b"\n", good[1], b"\xff\xfe\n", good[2],
                 b'{"kind": "log", "bo'])  # fmt: skip
    status, lines, err = run_tail(capsys, str(path))
    assert (status, lines) == (0, rendered(good))
    assert [re.sub(r": (not JSON|expected).*", r": \1", e) for e in err.splitlines()] == [
        f"pontem-async tail: {path}:2: invalid line skipped: not JSON",
        f"pontem-async tail: {path}:3: invalid line skipped: expected",
        f"pontem-async tail: {path}:6: invalid line skipped: not JSON",
        f"pontem-async tail: {path}:8: invalid line skipped: not JSON",
    ]


def test_tail_reports_a_corrupt_archive_and_reads_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [log_record(i) for i in range(4)]
    packed = gzip.compress(encode_line(records[0]) + encode_line(records[1]))
    (tmp_path / "records.jsonl.1.gz").write_bytes(packed[: len(packed) // 2])  # truncated
    write(tmp_path / "records.jsonl", records[2:])
    status, lines, err = run_tail(capsys, str(tmp_path))
    assert (status, lines[-2:]) == (0, rendered(records[2:]))
    assert "records.jsonl.1.gz: unreadable compressed data" in err


def test_tail_missing_file_is_an_error_with_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert run_tail(capsys, str(missing)) == (
        1, [], f"pontem-async tail: {missing}: no such file or directory\n"
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "pontem_async", "tail", str(missing)],
        capture_output=True, text=True, env=child_env(), timeout=60, check=False,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (1, "")
    assert "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tail_directory_without_jsonl_files_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = run_tail(capsys, str(tmp_path))
    assert (status, lines) == (1, [])
    assert "no JSONL files" in err


class _Follower:
    """``tail -f`` in a subprocess; its stdout lines are read by a thread, so the test can wait
    for each with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pontem_async", "tail", "-f", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        )  # fmt: skip
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def next(self) -> str:
        try:
            return self._queue.get(timeout=DEADLINE)
        except queue.Empty:
            pytest.fail(f"no line from the follower within {DEADLINE} s")

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: the exit status and what it wrote on stderr."""
        self.proc.send_signal(signal.SIGINT)
        status = self.proc.wait(timeout=DEADLINE)
        assert self.proc.stderr is not None
        return status, self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE)
        self._thread.join(timeout=DEADLINE)  # end of file reached: the pipes can be closed
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_tail_follow_prints_appended_lines_across_rotation_and_truncation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.jsonl"
    padded = log_record(2, body="after rotation", padding="x" * 500)
    records = [log_record(0), log_record(1), padded, log_record(3), log_record(4)]
    write(path, records[:1])
    follower = _Follower(str(path))
    try:
        assert follower.next() == render_record(records[0])
        with path.open("ab") as file:  # the writer's last line, then rotation right away
            file.write(encode_line(records[1]))
        os.replace(path, tmp_path / "records.jsonl.1")
        write(path, [padded])
        assert follower.next() == render_record(records[1])
        assert follower.next() == render_record(padded)
        write(path, [records[3]])  # truncated and rewritten shorter
        assert follower.next() == render_record(records[3])
        with path.open("ab") as file:
            file.write(encode_line(records[4]))
        assert follower.next() == render_record(records[4])
        status, err = follower.interrupt()  # Ctrl-C ends following cleanly
        assert (status, "Traceback" in err, "file truncated" in err) == (0, False, True)
    finally:
        follower.close()


@pytest.mark.asyncio
async def test_tail_follow_loses_nothing_across_many_rotations_of_the_real_handler(
    tmp_path: Path,
) -> None:
    """Dozens of rotations (with gzip) between two polls: every line still shows, once, in
    order."""
    path = tmp_path / "records.jsonl"
    write(path, [log_record(-1)])
    follower = _Follower("--json", str(path))
    try:
        assert orjson.loads(follower.next())["attributes"]["i"] == -1  # following from here
        handler = RotatingFileHandler(path, max_bytes=2000, backup_count=1000)
        telemetry = Telemetry(
            "svc", handlers=[handler], batch_size=5, flush_interval=0.005,
            install_signal_handlers=False,
        )  # fmt: skip
        telemetry.start()
        for i in range(600):
            telemetry.logger.info("e", i=i)
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        await telemetry.shutdown()
        assert len(os.listdir(tmp_path)) > 30
        got = [orjson.loads(follower.next())["attributes"]["i"] for _ in range(600)]
        assert got == list(range(600))
        assert follower.interrupt() == (0, "")
    finally:
        follower.close()


# ---------------------------------------------------------------------------- demo


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pontem_async", "demo", *args],
        capture_output=True, text=True, env=child_env(), timeout=120, check=False,
    )  # fmt: skip


def demo_lines(directory: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (directory / "records.jsonl").read_bytes().splitlines()]


def test_demo_serves_a_burst_and_writes_every_record_and_summarises_it(tmp_path: Path) -> None:
    directory = tmp_path / "out"
    proc = run_demo("--dir", str(directory))
    assert proc.returncode == 0, proc.stderr
    lines = demo_lines(directory)
    assert {line["kind"] for line in lines} == {"log", "metric", "profile", "event"}
    assert {line["resource"]["service.name"] for line in lines} == {"pontem-demo"}
    assert {line["resource"]["pontem.run_id"] for line in lines} == {"001"}
    profiles = [line for line in lines if line["kind"] == "profile"]
    assert len(profiles) == 200  # one call tree per request
    assert len({p["root"]["attributes"]["request_id"] for p in profiles}) == 200
    request_logs = [line for line in lines if line.get("body") in _demo.REQUEST_LOGS]
    assert len(request_logs) == 200
    assert f"telemetry files in {directory}: records.jsonl, runs\n" in proc.stdout
    run_file = directory / "runs" / "001" / "telemetry.ndjson"
    assert f"run 001: events in {run_file}\n" in proc.stdout
    assert [orjson.loads(x)["type"] for x in run_file.read_bytes().splitlines()] == ["demo"]
    assert re.search(r"route +requests +p50 +p95\n", proc.stdout)
    for route in ("/cart", "/checkout", "/search", "/users/{id}"):
        assert re.search(rf"\n  {re.escape(route)} +\d+ +[\d.]+ +[\d.]+\n", proc.stdout)
    assert re.search(r"\n  profile +200\n", proc.stdout)
    assert re.search(r"\n  dropped +0\n", proc.stdout)
    assert "http:GET /checkout" in proc.stdout  # the call tree
    assert f"pontem-async tail {directory}\n" in proc.stdout
    fingerprints = {
        line["attributes"]["exception.type"]
        for line in lines
        if "exception.fingerprint" in line.get("attributes", {})
    }
    assert fingerprints == {"TimeoutError"}
    assert "request failed" in proc.stderr  # the console echo of errors
    assert "Traceback" not in proc.stderr  # logged once, by the middleware, not by aiohttp


def test_demo_quiet_counts_only_its_own_run_in_a_reused_directory(tmp_path: Path) -> None:
    first = run_demo("--dir", str(tmp_path), "--quiet", "--requests", "30")
    second = run_demo("--dir", str(tmp_path), "--quiet", "--requests", "10")
    assert (first.returncode, first.stderr, second.returncode, second.stderr) == (0, "", 0, "")
    assert "run 002: events in" in second.stdout
    assert re.search(r"\n  profile +10\n", second.stdout)
    runs = Counter(line["resource"]["pontem.run_id"] for line in demo_lines(tmp_path))
    assert sorted(runs) == ["001", "002"]
    assert re.search(rf"\n  total +{runs['002']}\n", second.stdout)
