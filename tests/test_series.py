"""``pa.metrics.series``: many points per call, lists and NumPy arrays, steps, validation, JSONL.

Lines are written by the real RotatingFileHandler (or ``encode_line``, what every JSONL handler
calls) and validated against ``pontem_async/schemas/series.json``; NumPy arrays of several dtypes
must read back exactly. Validation errors are checked for the argument they name and for leaving
the series' steps untouched.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async._series import SeriesLog, series_log
from pontem_async.encoding.jsonl import encode_line
from pontem_async.handlers import RotatingFileHandler
from pontem_async.records import SeriesRecord
from pontem_async.testing import capture

SERIES = Draft202012Validator(
    json.loads(files("pontem_async").joinpath("schemas/series.json").read_text("utf-8"))
)
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
T0 = 1_718_000_000_000_000_000


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-JSON token {token}")


def parse(raw: bytes) -> dict[str, Any]:
    """A JSONL line parsed strictly, validated against the series schema and the rules the
    schema cannot say (equal column lengths, increasing steps)."""
    assert raw.endswith(b"\n")
    assert b"\n" not in raw[:-1]
    line = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    SERIES.validate(line)
    count = len(line["values"])
    assert len(line["steps"]) == count
    assert len(line.get("timestamps", line["steps"])) == count
    assert all(a < b for a, b in zip(line["steps"], line["steps"][1:], strict=False))
    assert line["timestamp"] == line["timeUnixNano"] / 1e9
    return line


def as_written(value: float) -> Any:
    """How a value is spelled on the line (non-finite floats as proto3 JSON strings)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return value


def read_back(written: list[Any], dtype: Any) -> Any:
    floats = [{"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v, v)
              for v in written]  # fmt: skip
    return np.array(floats, dtype=dtype)


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    """A Telemetry whose records are only captured (never started)."""
    telemetry = Telemetry("trainer", handlers=[], install_signal_handlers=False)
    yield telemetry
    telemetry.shutdown_sync(timeout=1)


@pytest.fixture
def log(tel: Telemetry) -> SeriesLog:
    return series_log(tel)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [parse(raw + b"\n") for raw in path.read_bytes().splitlines()]


# ---------------------------------------------------------------------------- JSONL, for real

DTYPES = [
    *("float64", "float32", "float16", ">f8", "<f4"),
    *("int64", "int32", "int8", "uint64", "uint8"),
]


def sample(dtype: str) -> Any:
    raw = np.array([0.1, -2.5, 1e-3, 3.0, 7.75, 1e4, -0.0, 42.0])
    kind = np.dtype(dtype).kind
    if kind == "f":
        return (raw * np.pi).astype(dtype)
    if kind == "u":
        return np.abs(raw * 3).astype(dtype)
    return (raw * 3).astype(dtype)


@pytest.mark.asyncio
async def test_numpy_arrays_of_every_dtype_round_trip_exactly_through_the_file_handler(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.jsonl"
    telemetry = Telemetry(
        "trainer",
        handlers=[RotatingFileHandler(path, name="file")],
        install_signal_handlers=False,
        flush_interval=0.01,
    )
    telemetry.start()
    log = series_log(telemetry)
    logged = {dtype: sample(dtype) for dtype in DTYPES}
    for dtype, values in logged.items():
        log.series("weights", values, labels={"dtype": dtype})
    strided = np.arange(20, dtype=np.float64)[::3]  # not C-contiguous
    log.series("strided", strided)
    log.series("listed", [0.5, 1, -3.25, math.nan, math.inf, -math.inf])
    assert await telemetry.flush(timeout=10)
    await telemetry.shutdown(timeout=5)

    lines = {(d["name"], d["labels"].get("dtype")): d for d in lines_of(path)}
    assert len(lines) == len(DTYPES) + 2
    for dtype, values in logged.items():
        line = lines[("weights", dtype)]
        assert line["steps"] == list(range(len(values)))
        back = read_back(line["values"], values.dtype)
        assert back.tobytes() == values.tobytes(), dtype
    assert lines[("strided", None)]["values"] == [0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    assert lines[("listed", None)]["values"] == [0.5, 1, -3.25, "NaN", "Infinity", "-Infinity"]
    assert lines[("listed", None)]["resource"] == {"service.name": "trainer"}


def test_nan_and_infinities_in_a_numpy_array_are_written_as_strings(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        log.series("loss", np.array([1.5, np.nan, np.inf, -np.inf], dtype=np.float32))
    line = parse(encode_line(cap.records[0]))
    assert line["values"] == [1.5, "NaN", "Infinity", "-Infinity"]


def test_one_line_per_call_with_columns_and_optional_timestamps(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        log.series("lr", [0.1, 0.2], timestamp=T0, unit="1", scale="epoch")
        log.series(
            "lr", np.array([0.3]), timestamps=np.array(["2024-06-10T06:13:20"], "datetime64[s]")
        )
        log.series("lr", [0.4, 0.5], timestamps=[T0 + 5, T0 + 1])
    first, second, third = (parse(encode_line(r)) for r in cap.records)
    assert first == {
        "kind": "series",
        "timestamp": T0 / 1e9,
        "timeUnixNano": T0,
        "name": "lr",
        "unit": "1",
        "scale": "epoch",
        "labels": {},
        "values": [0.1, 0.2],
        "steps": [0, 1],
        "resource": {"service.name": "trainer"},
    }
    assert "timestamps" not in first
    assert (second["steps"], second["timestamps"]) == ([2], [T0])
    assert (third["steps"], third["timestamps"]) == ([3, 4], [T0 + 5, T0 + 1])


def test_the_caller_may_reuse_its_buffers_right_after_the_call(log: SeriesLog) -> None:
    buffer = np.array([1.0, 2.0, 3.0])
    steps = [10, 11, 12]
    values = [4.0, 5.0]
    with capture(log._telemetry) as cap:
        log.series("a", buffer, steps=steps)
        log.series("b", values)
        buffer[:] = -1.0
        steps[0] = 0
        values.append(6.0)
    a, b = (parse(encode_line(r)) for r in cap.records)
    assert (a["values"], a["steps"]) == ([1.0, 2.0, 3.0], [10, 11, 12])
    assert b["values"] == [4.0, 5.0]


def test_a_hand_built_record_with_an_awkward_array_is_still_written_as_numbers() -> None:
    """Records built without the API (another producer, a test) get the same treatment."""
    values = np.arange(12, dtype=np.float64).reshape(3, 4)[:, 1].astype(">f8")
    record = SeriesRecord(T0, "x", values, np.array([5, 6, 7], dtype=">i4"), None, {"k": "v"})
    line = parse(encode_line(record))
    assert (line["values"], line["steps"], line["scale"]) == ([1.0, 5.0, 9.0], [5, 6, 7], "step")


# ---------------------------------------------------------------------------- properties

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
numbers = st.floats(width=64) | st.integers(-(2**63), 2**63 - 1)


@PROPERTY
@given(values=st.lists(numbers, max_size=40), data=st.data())
def test_any_list_of_numbers_is_written_with_its_steps(
    log: SeriesLog, values: list[Any], data: st.DataObject
) -> None:
    log.set_last_step("p", None)
    explicit = data.draw(st.booleans())
    steps = sorted(data.draw(st.sets(st.integers(0, 2**40), min_size=len(values),
                                     max_size=len(values))))  # fmt: skip
    with capture(log._telemetry) as cap:
        last = log.series("p", values, steps=steps if explicit else None)
    if not values:
        assert (cap.records, last) == ([], None)
        return
    line = parse(encode_line(cap.records[0]))
    assert line["values"] == [as_written(v) for v in values]
    assert line["steps"] == (steps if explicit else list(range(len(values))))
    assert last == line["steps"][-1] == log.get_last_step("p")


@PROPERTY
@given(
    values=st.lists(st.floats(width=32), min_size=1, max_size=40),
    dtype=st.sampled_from(["float64", "float32", "float16"]),
    calls=st.integers(1, 4),
)
def test_any_float_array_round_trips_and_steps_continue(
    log: SeriesLog, values: list[float], dtype: str, calls: int
) -> None:
    log.set_last_step("q", None)
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=dtype)
    with capture(log._telemetry) as cap:
        for _ in range(calls):
            log.series("q", array)
    written = [parse(encode_line(r)) for r in cap.records]
    canonical = np.where(np.isnan(array), np.nan, array)  # NaN payloads are not kept
    for line in written:
        assert read_back(line["values"], dtype).tobytes() == canonical.astype(dtype).tobytes()
    all_steps = [s for line in written for s in line["steps"]]
    assert all_steps == list(range(calls * len(values)))


@PROPERTY
@given(
    ints=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=30),
    dtype=st.sampled_from(["int64", "int32", ">i8"]),
    first=st.integers(0, 2**50),
)
def test_any_int_array_round_trips_from_first_step(
    log: SeriesLog, ints: list[int], dtype: str, first: int
) -> None:
    log.set_last_step("r", None)
    with capture(log._telemetry) as cap:
        log.series("r", np.array(ints, dtype=dtype), first_step=first)
    line = parse(encode_line(cap.records[0]))
    assert line["values"] == ints
    assert line["steps"] == list(range(first, first + len(ints)))


# ---------------------------------------------------------------------------- steps


def test_auto_steps_continue_across_calls_and_per_label_set(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        assert log.series("loss", [1.0, 2.0], labels={"env": "0"}) == 1
        assert log.series("loss", np.array([3.0]), labels={"env": "1"}) == 0
        assert log.series("loss", [4.0, 5.0, 6.0], labels={"env": 0}) == 4  # int label == "0"
        assert log.series("loss", [7.0]) == 0
        assert log.series("other", [8.0], labels={"env": "0"}) == 0
        assert log.series("loss", [9.0], labels={"env": "0"}, first_step=10) == 10
        assert log.series("loss", [0.5], labels={"env": "0"}) == 11
    steps = [(r.name, dict(r.labels), list(r.steps)) for r in cap.records]
    assert steps == [
        ("loss", {"env": "0"}, [0, 1]),
        ("loss", {"env": "1"}, [0]),
        ("loss", {"env": "0"}, [2, 3, 4]),
        ("loss", {}, [0]),
        ("other", {"env": "0"}, [0]),
        ("loss", {"env": "0"}, [10]),
        ("loss", {"env": "0"}, [11]),
    ]
    assert log.get_last_step("loss", {"env": "0"}) == 11
    assert log.get_last_step("loss", {"env": 1}) == 0
    assert log.get_last_step("loss") == 0
    assert log.get_last_step("never") is None


def test_explicit_steps_must_come_after_the_last_step(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        log.series("acc", [0.1, 0.2], steps=[5, 9])
        log.series("acc", [0.3])  # continues at 10
        with pytest.raises(pa.ValidationError, match=r"^steps: must come after the last step"):
            log.series("acc", [0.4], steps=[10])
        log.series("acc", [0.4], steps=np.array([11]))
    assert [list(r.steps) for r in cap.records] == [[5, 9], [10], [11]]


def test_set_last_step_seeds_and_resets_a_series(log: SeriesLog) -> None:
    log.set_last_step("loss", 999, {"env": "0"})
    assert log.get_last_step("loss", {"env": "0"}) == 999
    with capture(log._telemetry) as cap:
        log.series("loss", [1.0, 2.0], labels={"env": "0"})
        log.set_last_step("loss", None, {"env": "0"})
        log.series("loss", [3.0], labels={"env": "0"})
    assert [list(r.steps) for r in cap.records] == [[1000, 1001], [0]]
    with pytest.raises(pa.ValidationError, match=r"^step: expected an int >= 0"):
        log.set_last_step("loss", -5)


def test_an_empty_call_records_nothing_and_keeps_the_last_step(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        assert log.series("x", []) is None
        log.series("x", [1.0])
        assert log.series("x", np.array([]), steps=[]) == 0
    assert len(cap.records) == 1


def test_threads_feeding_one_series_never_share_or_reorder_steps(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        barrier = threading.Barrier(4)

        def work() -> None:
            barrier.wait()
            for _ in range(200):
                log.series("shared", np.zeros(7))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    steps = [list(r.steps) for r in cap.records]
    assert all(s == list(range(s[0], s[0] + 7)) for s in steps)
    assert sorted(x for s in steps for x in s) == list(range(4 * 200 * 7))
    assert log.get_last_step("shared") == 4 * 200 * 7 - 1


def test_resume_steps_continues_the_curves_a_previous_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"

    def run(resume: bool) -> SeriesLog:
        telemetry = Telemetry(
            "trainer",
            handlers=[RotatingFileHandler(path, name="file", max_bytes=2000, compress=True)],
            install_signal_handlers=False,
        )
        telemetry.start()
        log = series_log(telemetry)
        if resume:
            assert log.resume_steps(tmp_path) == 2
        for _ in range(10):
            log.series("loss", np.ones(10), labels={"env": "0"})
        if resume:  # continues after 200
            log.series("reward", [1.0, 2.0])
        else:
            log.series("reward", [1.0, 2.0], steps=[100, 200])
        telemetry.shutdown_sync(timeout=5)
        return log

    run(False)
    log = run(True)
    assert log.get_last_step("loss", {"env": "0"}) == 199
    assert log.get_last_step("reward") == 202
    assert sorted(p.name for p in tmp_path.iterdir())[:2] == [
        "records.jsonl",
        "records.jsonl.1.gz",
    ]
    with pytest.raises(FileNotFoundError):
        log.resume_steps(tmp_path / "missing.jsonl")


def test_resume_steps_never_goes_back(log: SeriesLog, tmp_path: Path) -> None:
    line = {"kind": "series", "name": "loss", "labels": {}, "steps": [3, 4], "resource": {}}
    (tmp_path / "old.jsonl").write_text(json.dumps(line) + "\nnot json\n", encoding="utf-8")
    log.set_last_step("loss", 10)
    assert log.resume_steps(tmp_path / "old.jsonl") == 1
    assert log.get_last_step("loss") == 10


def test_each_run_has_its_own_steps(log: SeriesLog, tmp_path: Path) -> None:
    tel = log._telemetry
    with capture(tel) as cap:
        log.series("loss", [1.0, 2.0])
        tel.events.start_run(run_id="sweep-1", site_dir=tmp_path)
        log.series("loss", [3.0])
        tel.events.stop_run()
        tel.events.start_run(run_id="sweep-2", site_dir=tmp_path)
        log.series("loss", [4.0])
        assert log.get_last_step("loss") == 0
        tel.events.stop_run()
        log.series("loss", [5.0])
    written = [(list(r.steps), (r.resource or {}).get("pontem.run_id")) for r in cap.records]
    assert written == [([0, 1], None), ([0], "sweep-1"), ([0], "sweep-2"), ([2], None)]


def test_a_full_queue_gives_the_steps_back(tmp_path: Path) -> None:
    gate = threading.Event()

    class Stuck(RotatingFileHandler):
        async def emit(self, batch: Any) -> None:
            import asyncio

            await asyncio.to_thread(gate.wait)
            await super().emit(batch)

    telemetry = Telemetry(
        "trainer",
        handlers=[Stuck(tmp_path / "r.jsonl", name="stuck")],
        install_signal_handlers=False,
        queue_size=1,
        batch_size=1,
        overflow="raise",
    )
    log = series_log(telemetry)
    try:
        accepted = -1
        with pytest.raises(pa.QueueFullError):  # noqa: PT012 - the queue fills after a few
            for _ in range(100):
                accepted = log.series("loss", [1.0, 2.0])  # type: ignore[assignment]
        assert log.get_last_step("loss") == accepted
    finally:
        gate.set()
        telemetry.shutdown_sync(timeout=5)
    assert [line["steps"] for line in lines_of(tmp_path / "r.jsonl")] == [
        [i, i + 1] for i in range(0, accepted + 1, 2)
    ]


# ---------------------------------------------------------------------------- validation

BAD_CALLS: list[tuple[str, dict[str, Any], str, str]] = [
    ("", {"values": [1.0]}, "name", "non-empty"),
    (3, {"values": [1.0]}, "name", "expected a str"),  # type: ignore[list-item]
    ("a b", {"values": [1.0]}, "name", "matching"),
    ("x", {"values": "123"}, "values", "expected a list or a 1-D NumPy array"),
    ("x", {"values": None}, "values", "expected a list or a 1-D NumPy array"),
    ("x", {"values": {"a": 1}}, "values", "expected a list"),
    ("x", {"values": [1.0, "2"]}, "values", "at index 1"),
    ("x", {"values": [1.0, True]}, "values", "bool True at index 1"),
    ("x", {"values": [1.0, None]}, "values", "at index 1"),
    ("x", {"values": [2**64]}, "values", "beyond 64 bits"),
    ("x", {"values": np.zeros((2, 3))}, "values", "shape (2, 3)"),
    ("x", {"values": np.array([True, False])}, "values", "dtype bool"),
    ("x", {"values": np.array([1 + 2j])}, "values", "dtype complex128"),
    ("x", {"values": np.array([1.0, "a"], dtype=object)}, "values", "astype(float)"),
    ("x", {"values": [1.0, 2.0], "steps": [0]}, "steps", "expected 2 steps, one per value"),
    ("x", {"values": np.ones(3), "steps": np.arange(4)}, "steps", "expected 3 steps"),
    ("x", {"values": [1.0, 2.0], "steps": [3, 3]}, "steps", "must strictly increase, got 3 then 3"),
    ("x", {"values": [1.0] * 3, "steps": np.array([1, 5, 2])}, "steps", "5 then 2 at index 2"),
    ("x", {"values": [1.0], "steps": [-1]}, "steps", "from 0"),
    ("x", {"values": [1.0], "steps": [1.5]}, "steps", "expected ints"),
    ("x", {"values": [1.0], "steps": np.array([1.0])}, "steps", "integer dtype"),
    ("x", {"values": [1.0], "steps": "0"}, "steps", "expected a list"),
    ("x", {"values": [1.0], "steps": [0], "first_step": 0}, "first_step", "not both"),
    ("x", {"values": [1.0], "first_step": -1}, "first_step", "int >= 0"),
    ("x", {"values": [1.0], "first_step": 1.0}, "first_step", "int >= 0"),
    ("x", {"values": [1.0], "timestamps": [1, 2]}, "timestamps", "expected 1 timestamps"),
    ("x", {"values": [1.0], "timestamps": [1.5]}, "timestamps", "expected ints"),
    ("x", {"values": [1.0], "timestamps": [-1]}, "timestamps", ">= 0"),
    ("x", {"values": [1.0], "timestamps": np.array([0.5])}, "timestamps", "dtype float64"),
    ("x", {"values": [1.0], "timestamps": 5}, "timestamps", "expected a list"),
    ("x", {"values": [1.0], "timestamp": 1.7e9}, "timestamp", "time.time_ns()"),
    ("x", {"values": [1.0], "labels": ["env"]}, "labels", "expected a mapping"),
    ("x", {"values": [1.0], "labels": {"env": 0.5}}, "labels", "str or an int"),
    ("x", {"values": [1.0], "labels": {"env": None}}, "labels", "str or an int"),
    ("x", {"values": [1.0], "labels": {"bad-name": "1"}}, "labels", "label names"),
    ("x", {"values": [1.0], "labels": {1: "1"}}, "labels", "label names"),
    ("x", {"values": [1.0], "scale": ""}, "scale", "what the steps count"),
    ("x", {"values": [1.0], "scale": "per step"}, "scale", "what the steps count"),
    ("x", {"values": [1.0], "unit": " ms"}, "unit", "expected a unit"),
    ("x", {"values": [1.0], "unit": 5}, "unit", "expected a str"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "argument", "fragment"),
    BAD_CALLS,
    ids=[f"{c[2]}-{i}" for i, c in enumerate(BAD_CALLS)],
)
def test_every_validation_error_names_its_argument_and_changes_nothing(
    log: SeriesLog, name: Any, kwargs: dict[str, Any], argument: str, fragment: str
) -> None:
    log.series("x", [0.0], steps=[0])
    with capture(log._telemetry) as cap, pytest.raises(pa.ValidationError) as caught:
        log.series(name, **kwargs)
    error = caught.value
    assert str(error).startswith(f"{argument}: ")
    assert fragment in str(error)
    assert error.argument == argument
    assert cap.records == []
    assert log.get_last_step("x") == 0


def test_validation_error_is_a_value_error_and_a_pontem_error() -> None:
    assert issubclass(pa.ValidationError, ValueError)
    assert issubclass(pa.ValidationError, pa.PontemError)


def test_a_float_label_is_refused_even_after_an_equal_int_label(log: SeriesLog) -> None:
    log.series("x", [1.0], labels={"seed": "1"})
    log.series("x", [1.0], labels={"seed": 1})
    with pytest.raises(pa.ValidationError, match="str or an int"):
        log.series("x", [1.0], labels={"seed": 1.0})


def test_numpy_scalars_in_a_list_are_accepted_as_numbers(log: SeriesLog) -> None:
    with capture(log._telemetry) as cap:
        log.series("x", [np.float32(0.5), np.int64(3), 1.0], steps=[np.int64(4), 5, 6])
    line = parse(encode_line(cap.records[0]))
    assert (line["values"], line["steps"]) == ([0.5, 3, 1.0], [4, 5, 6])


# ---------------------------------------------------------------------------- the facade


def test_the_facade_is_the_default_instances() -> None:
    assert pa.metrics.series == series_log(pa.get_default()).series
    assert pa.metrics.get_last_step == series_log(pa.get_default()).get_last_step
    for name in ("series", "get_last_step", "set_last_step", "resume_steps", "SeriesLog"):
        assert name in pa.metrics.__all__


def test_numpy_is_not_imported_when_only_lists_are_logged(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import pontem_async as pa

        telemetry = pa.init(service_name="lists", emit_dir=sys.argv[1])
        for epoch in range(3):
            pa.metrics.series("loss", [0.5, 0.25, float("nan")], labels={"env": "0"})
        pa.log_config({"optimizer": {"lr": 0.1}})
        telemetry.shutdown_sync()
        assert "numpy" not in sys.modules, "numpy was imported"
        print(pa.metrics.get_last_step("loss", {"env": "0"}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "8"
    series = [d for d in lines_of_any(tmp_path / "records.jsonl") if d["kind"] == "series"]
    assert [d["steps"] for d in series] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def lines_of_any(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_bytes().splitlines():
        line = json.loads(raw)
        if line["kind"] == "series":
            parse(raw + b"\n")
        out.append(line)
    return out
