"""RotatingFileHandler on real files: rotation invariants (property-tested), file modes, crash
leftovers, hard-to-encode values, bad paths, appending and closing."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import resource
import signal
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pontem_async import Telemetry
from pontem_async.handlers import RotatingFileHandler
from pontem_async.records import LogRecord
from pontem_async.testing import MemoryHandler

RESOURCE = {"service.name": "file-test"}


def record(seq: int, body: str = "", **attributes: Any) -> LogRecord:
    return LogRecord(time.time_ns(), 9, body, {"seq": seq, **attributes}, "test", RESOURCE)


def strict_json(line: bytes) -> dict[str, Any]:
    """Parse one line as standard JSON: bare NaN/Infinity (which Python accepts) are errors."""

    def reject(token: str) -> None:
        raise ValueError(f"not valid JSON: {token}")

    value = json.loads(line, parse_constant=reject)
    assert isinstance(value, dict)
    return value


def rotation_index(path: Path, file: Path) -> int:
    return int(file.name[len(path.name) + 1 :].removesuffix(".gz"))


def read_files(path: Path) -> list[tuple[Path, bytes]]:
    """Every file of the set with its (decompressed) content, oldest first, current last."""
    rotated = [p for p in path.parent.iterdir() if p != path]
    ordered = sorted(rotated, key=lambda p: rotation_index(path, p), reverse=True)
    if path.exists():
        ordered.append(path)
    return [
        (p, gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
        for p in ordered
    ]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """All records of the file set, oldest first."""
    out: list[dict[str, Any]] = []
    for _, content in read_files(path):
        out.extend(strict_json(line) for line in content.split(b"\n")[:-1])
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def open_descriptors(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def check_file_set(
    path: Path, bodies: Sequence[str], max_bytes: int, backup_count: int, compress: bool
) -> None:
    """The invariants every file set must satisfy after ``bodies`` (seq = index) were written."""
    names = sorted(p.name for p in path.parent.iterdir())
    rotated = [n for n in names if n != path.name]
    suffix = ".gz" if compress else ""
    assert path.name in names
    assert len(rotated) <= backup_count
    # rotated files are numbered 1..n without gaps, all compressed or none, no temp leftovers
    assert sorted(rotated) == sorted(f"{path.name}.{i}{suffix}" for i in range(1, len(rotated) + 1))
    seqs: list[int] = []
    for file, content in read_files(path):
        assert mode(file) == 0o640, file.name
        assert content.endswith(b"\n"), file.name
        lines = [strict_json(line) for line in content.split(b"\n")[:-1]]
        assert len(content) <= max_bytes or len(lines) == 1, (file.name, len(content))
        for line in lines:
            seq = line["attributes"]["seq"]
            assert (line["kind"], line["body"]) == ("log", bodies[seq])
            seqs.append(seq)
    total = len(bodies)
    # what survives is the newest records, each once, in order
    assert seqs == list(range(total - len(seqs), total))
    if len(rotated) < backup_count:  # no file was ever deleted: nothing may be missing
        assert len(seqs) == total


BODIES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=200, max_value=1500).map(lambda n: "€" * n),  # often > max_bytes
)


async def emit_batches(
    path: Path,
    batches: list[list[str]],
    max_bytes: int,
    backup_count: int,
    *,
    compress: bool,
    fsync: bool,
) -> None:
    handler = RotatingFileHandler(
        path, max_bytes=max_bytes, backup_count=backup_count, compress=compress, fsync=fsync
    )
    seq = 0
    async with handler:
        for batch in batches:
            await handler.emit([record(seq + i, body) for i, body in enumerate(batch)])
            seq += len(batch)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(BODIES, min_size=1, max_size=10), min_size=1, max_size=8),
    max_bytes=st.integers(min_value=100, max_value=4000),
    backup_count=st.sampled_from([0, 1, 2, 3, 1000]),
    compress=st.booleans(),
    fsync=st.booleans(),
)
def test_rotation_never_loses_duplicates_or_reorders_records(
    batches: list[list[str]], max_bytes: int, backup_count: int, compress: bool, fsync: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs" / "records.jsonl"
        asyncio.run(
            emit_batches(path, batches, max_bytes, backup_count, compress=compress, fsync=fsync)
        )
        bodies = [body for batch in batches for body in batch]
        check_file_set(path, bodies, max_bytes, backup_count, compress)


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(BODIES, min_size=1, max_size=60),
    batch_size=st.integers(min_value=1, max_value=16),
    max_bytes=st.integers(min_value=100, max_value=4000),
    compress=st.booleans(),
)
def test_rotation_through_the_pipeline_delivers_every_record_once_in_order(
    bodies: list[str], batch_size: int, max_bytes: int, compress: bool
) -> None:
    async def run(path: Path) -> None:
        handler = RotatingFileHandler(
            path, max_bytes=max_bytes, backup_count=1000, compress=compress, name="file"
        )
        telemetry = Telemetry(
            "file-test",
            handlers=[handler],
            batch_size=batch_size,
            flush_interval=0.01,
            install_signal_handlers=False,
        )
        telemetry.start()
        for seq, body in enumerate(bodies):
            telemetry.logger.info(body, seq=seq)
        report = await telemetry.shutdown(timeout=10)
        assert report.complete
        assert telemetry.stats()["file"]["delivered"] == len(bodies)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        asyncio.run(run(path))
        check_file_set(path, bodies, max_bytes, 1000, compress)


@pytest.mark.asyncio
async def test_backup_count_zero_deletes_full_files_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    async with RotatingFileHandler(path, max_bytes=600, backup_count=0) as handler:
        for seq in range(20):
            await handler.emit([record(seq, "x" * 100)])
    assert listing(tmp_path) == ["records.jsonl"]
    seqs = [line["attributes"]["seq"] for line in read_lines(path)]
    assert seqs == list(range(20 - len(seqs), 20))
    assert 0 < len(seqs) < 20


@pytest.mark.asyncio
async def test_flush_leaves_a_stable_compressed_file_set_while_still_open(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    handler = RotatingFileHandler(path, max_bytes=500, backup_count=20)
    await handler.open()
    await handler.emit([record(seq, "y" * 100) for seq in range(12)])
    await handler.flush()
    names = set(listing(tmp_path))
    assert names == {"records.jsonl", *(f"records.jsonl.{i}.gz" for i in range(1, len(names)))}
    assert len(names) > 2
    assert [line["attributes"]["seq"] for line in read_lines(path)] == list(range(12))
    await handler.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("umask", [0o000, 0o077])
@pytest.mark.parametrize("compress", [True, False])
async def test_every_file_gets_mode_0640_whatever_the_umask(
    tmp_path: Path, umask: int, compress: bool
) -> None:
    path = tmp_path / "records.jsonl"
    previous = os.umask(umask)
    try:
        async with RotatingFileHandler(path, max_bytes=300, compress=compress) as handler:
            for seq in range(6):
                await handler.emit([record(seq, "z" * 150)])
    finally:
        os.umask(previous)
    names = listing(tmp_path)
    assert len(names) == 6
    assert {name: mode(tmp_path / name) for name in names} == dict.fromkeys(names, 0o640)


@pytest.mark.asyncio
async def test_unicode_and_huge_messages_are_written_intact(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    huge = "ünïcødé 日本語 🎉👩‍👩‍👧 " * 70_000  # ~2.5 MB, larger than max_bytes
    bodies = [
        "héllo wörld",
        "日本語のログ",
        "emoji 🎉👩‍👩‍👧",
        "new\nline\ttab\r\x00",
        huge,
        "after",
    ]
    async with RotatingFileHandler(path, max_bytes=1024 * 1024) as handler:
        await handler.emit(
            [record(seq, body, **{"ключ": "значение"}) for seq, body in enumerate(bodies)]
        )
        await handler.emit([record(len(bodies), "lone surrogate \ud800 survives")])
    lines = read_lines(path)
    assert [line["body"] for line in lines[:-1]] == bodies
    assert all(line["attributes"]["ключ"] == "значение" for line in lines[:-1])
    assert lines[-1]["body"].startswith("lone surrogate ")
    assert "ud800" in lines[-1]["body"]
    files = read_files(path)  # the huge line sits alone in its file
    assert [len(content.split(b"\n")) - 1 for _, content in files] == [4, 1, 2]


@pytest.mark.asyncio
async def test_non_finite_floats_are_written_as_strings_in_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    nan, inf = float("nan"), float("inf")
    attributes = {"loss": nan, "best": inf, "worst": -inf, "hist": [1.5, nan], "deep": {"x": nan}}
    async with RotatingFileHandler(path) as handler:
        await handler.emit([record(0, "metrics", **attributes)])
    assert read_lines(path)[0]["attributes"] == {
        "seq": 0,
        "loss": "NaN",
        "best": "Infinity",
        "worst": "-Infinity",
        "hist": [1.5, "NaN"],
        "deep": {"x": "NaN"},
    }


class Point:
    def __str__(self) -> str:
        return "Point(1, 2)"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "<Unprintable>"


@pytest.mark.asyncio
async def test_values_json_cannot_hold_fall_back_to_their_str(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    attributes = {"point": Point(), "odd": Unprintable(), "raw": b"\x01", "ok": 3}
    async with RotatingFileHandler(path) as handler:
        await handler.emit([record(0, "values", **attributes), record(1, "next")])
    lines = read_lines(path)
    assert lines[0]["attributes"] == {
        "seq": 0,
        "point": "Point(1, 2)",
        "odd": "<Unprintable>",
        "raw": "b'\\x01'",
        "ok": 3,
    }
    assert lines[1]["body"] == "next"


@pytest.mark.asyncio
async def test_existing_file_is_appended_to_and_its_size_counts(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    async with RotatingFileHandler(path, max_bytes=1000) as first:
        await first.emit([record(0, "a" * 250), record(1, "b" * 250)])
    old_size = path.stat().st_size
    assert 800 < old_size <= 1000
    path.chmod(0o600)  # a mode the operator chose is kept
    async with RotatingFileHandler(path, max_bytes=1000, compress=False) as second:
        await second.emit([record(2, "c" * 250)])  # would overflow: the old content rotates
    assert [line["attributes"]["seq"] for line in read_lines(path)] == [0, 1, 2]
    assert (tmp_path / "records.jsonl.1").stat().st_size == old_size
    assert mode(tmp_path / "records.jsonl.1") == 0o600
    async with RotatingFileHandler(path, max_bytes=1000) as third:  # now compressing
        await third.emit([record(3, "d")])
    assert [line["attributes"]["seq"] for line in read_lines(path)] == [0, 1, 2, 3]
    assert listing(tmp_path) == ["records.jsonl", "records.jsonl.1.gz"]
    assert mode(tmp_path / "records.jsonl.1.gz") == 0o600  # compressing never widens access


@pytest.mark.asyncio
async def test_close_is_idempotent_and_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    never_opened = RotatingFileHandler(tmp_path / "unused.jsonl")
    await never_opened.close()
    await never_opened.close()
    handler = RotatingFileHandler(path)
    await handler.open()
    await handler.emit([record(0, "one")])
    assert open_descriptors(path) == 1
    await handler.close()
    await handler.close()
    assert open_descriptors(path) == 0
    await handler.emit([record(1, "two")])  # a closed handler reopens on demand
    await handler.close()
    assert [line["body"] for line in read_lines(path)] == ["one", "two"]
    assert not (tmp_path / "unused.jsonl").exists()


@pytest.mark.asyncio
async def test_interrupted_compression_is_finished_without_loss_or_duplicates(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.jsonl"
    old = b"".join(
        json.dumps({"kind": "log", "body": b, "attributes": {"seq": i}}).encode() + b"\n"
        for i, b in enumerate(["old-0", "old-1"])
    )
    # crash before the .gz appeared: .1 alone (plus a partial temp file)
    (tmp_path / "records.jsonl.1").write_bytes(old)
    (tmp_path / "records.jsonl.1.gz.tmp").write_bytes(b"\x1f\x8b partial")
    async with RotatingFileHandler(path) as handler:
        await handler.emit([record(2, "new")])
    assert listing(tmp_path) == ["records.jsonl", "records.jsonl.1.gz"]
    assert [line["body"] for line in read_lines(path)] == ["old-0", "old-1", "new"]
    # crash after the .gz appeared but before .1 was removed: both hold the same records
    (tmp_path / "records.jsonl.1").write_bytes(old)
    async with RotatingFileHandler(path):
        pass
    assert listing(tmp_path) == ["records.jsonl", "records.jsonl.1.gz"]
    assert [line["body"] for line in read_lines(path)] == ["old-0", "old-1", "new"]


@pytest.mark.asyncio
async def test_rotated_files_beyond_backup_count_from_an_earlier_run_are_removed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.jsonl"
    for index in range(1, 7):
        with gzip.open(tmp_path / f"records.jsonl.{index}.gz", "wb") as old:
            old.write(json.dumps({"body": f"older-{index}"}).encode() + b"\n")
    (tmp_path / "records.jsonl.7").write_text('{"body": "oldest"}\n')
    async with RotatingFileHandler(path, max_bytes=200, backup_count=2) as handler:
        await handler.emit([record(0, "p" * 100), record(1, "q" * 100)])
    assert listing(tmp_path) == [
        "records.jsonl",
        "records.jsonl.1.gz",
        "records.jsonl.2.gz",
    ]
    assert [line["body"] for line in read_lines(path)] == ["older-1", "p" * 100, "q" * 100]


@pytest.mark.asyncio
async def test_a_failed_compression_keeps_the_file_uncompressed_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "records.jsonl"
    (tmp_path / "records.jsonl.1.gz.tmp").mkdir()  # gzip's temp name is taken: it must fail
    async with RotatingFileHandler(path, max_bytes=300) as handler:
        for seq in range(3):
            await handler.emit([record(seq, "r" * 150)])
    assert listing(tmp_path) == [
        "records.jsonl",
        "records.jsonl.1",
        "records.jsonl.1.gz.tmp",
        "records.jsonl.2",
    ]
    contents = [(tmp_path / name).read_bytes() for name in ("records.jsonl.2", "records.jsonl.1")]
    contents.append(path.read_bytes())
    assert [strict_json(c)["attributes"]["seq"] for c in contents] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.name == "pontem_async"]
    assert len(warnings) == 2
    assert all("could not gzip a rotated file" in w for w in warnings)


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Make writes past ``limit`` bytes fail with EFBIG: a real full-disk stand-in."""
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, previous[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        signal.signal(signal.SIGXFSZ, previous_handler)


@pytest.mark.asyncio
async def test_a_write_failing_midway_leaves_no_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    async with RotatingFileHandler(path) as handler:
        await handler.emit([record(0, "before")])
        size = path.stat().st_size
        with file_size_limit(size + 2000), pytest.raises(OSError, match="cannot write to") as info:
            await handler.emit([record(1, "w" * 1500), record(2, "w" * 1500)])
        assert str(path) in str(info.value)
        assert path.stat().st_size == size
        await handler.emit([record(3, "after")])
    assert [line["body"] for line in read_lines(path)] == ["before", "after"]


@pytest.mark.asyncio
async def test_unusable_path_fails_open_and_emit_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    handler = RotatingFileHandler(blocker / "records.jsonl", name="file")
    with pytest.raises(NotADirectoryError, match="not-a-dir exists and is not a directory"):
        await handler.open()
    with pytest.raises(NotADirectoryError, match="handler 'file': cannot create the directory"):
        await handler.emit([record(0)])
    with pytest.raises(FileNotFoundError, match="cannot create the directory /proc/pontem-test"):
        await RotatingFileHandler("/proc/pontem-test/records.jsonl").open()
    await handler.close()


@pytest.mark.asyncio
async def test_bad_path_is_logged_once_and_counted_while_other_handlers_get_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    memory = MemoryHandler(name="memory")
    telemetry = Telemetry(
        "file-test",
        handlers=[
            RotatingFileHandler(blocker / "records.jsonl", name="file", kinds=["log"]),
            memory,
        ],
        batch_size=10,
        flush_interval=0.01,
        install_signal_handlers=False,
    )
    telemetry.start()
    try:
        for seq in range(25):
            telemetry.logger.info("keeps running", seq=seq)  # never raises into the app
        assert await telemetry.flush(5) is False
        for seq in range(25, 30):
            telemetry.logger.info("keeps running", seq=seq)
        assert await telemetry.flush(5) is False
    finally:
        await telemetry.shutdown(timeout=5)
    assert [r.attributes["seq"] for r in memory.logs] == list(range(30))
    stats = telemetry.stats()
    assert stats["file"]["dropped"] == {"handler_error": 30}
    assert stats["file"]["delivered"] == 0
    # 30 logs, plus the final export of the drops as the pontem.dropped_records metric
    assert stats["memory"]["delivered"] == 31
    (drops,) = [r for r in memory.records if r.kind == "metric"]
    assert drops.name == "pontem.dropped_records"  # type: ignore[attr-defined]
    assert [(p.labels, p.value) for p in drops.points] == [  # type: ignore[attr-defined]
        ({"handler": "file", "reason": "handler_error"}, 30.0)
    ]
    errors = [r for r in caplog.records if r.name == "pontem_async" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "'file'" in message
    assert f"{blocker} exists and is not a directory" in message


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"path": 3}, TypeError, "path: expected a path, got int"),
        ({"path": b"records.jsonl"}, TypeError, "path: expected a path, got bytes"),
        ({"path": ""}, ValueError, "path: expected a non-empty file path, got ''"),
        ({"max_bytes": -1}, ValueError, "max_bytes: expected a positive integer, got -1"),
        ({"max_bytes": 0}, ValueError, "max_bytes: expected a positive integer, got 0"),
        ({"max_bytes": True}, ValueError, "max_bytes: expected a positive integer, got True"),
        ({"max_bytes": 1.5}, ValueError, "max_bytes: expected a positive integer, got 1.5"),
        ({"backup_count": -1}, ValueError, "backup_count: expected an integer >= 0, got -1"),
        ({"backup_count": False}, ValueError, "backup_count: expected an integer >= 0, got False"),
        ({"backup_count": "5"}, ValueError, "backup_count: expected an integer >= 0, got '5'"),
        ({"compress": "yes"}, TypeError, "compress: expected a bool, got str"),
        ({"fsync": 1}, TypeError, "fsync: expected a bool, got int"),
        ({"level": "loud"}, ValueError, "level: expected one of trace"),
        ({"kinds": ["logs"]}, ValueError, "kinds: unknown record kind"),
    ],
)
def test_invalid_arguments_are_rejected_naming_the_argument(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"path": "records.jsonl", **kwargs}
    with pytest.raises(error) as info:
        RotatingFileHandler(**arguments)
    assert str(info.value).startswith(message)


def test_describe_shows_the_file_settings(tmp_path: Path) -> None:
    handler = RotatingFileHandler(
        tmp_path / "records.jsonl",
        max_bytes=2048,
        backup_count=3,
        compress=False,
        name="file",
        kinds=["log"],
        level="warn",
    )
    assert handler.describe() == {
        "name": "file",
        "kinds": ["log"],
        "level": "warn",
        "path": str(tmp_path / "records.jsonl"),
        "max_bytes": 2048,
        "backup_count": 3,
        "compress": False,
        "fsync": False,
    }


def test_relative_path_is_resolved_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    handler = RotatingFileHandler(Path("telemetry") / "records.jsonl")
    assert handler.path == str(tmp_path / "telemetry" / "records.jsonl")
