"""Events and runs: envelopes, the current view, run ids numbered as panoptes numbers them, the
run's telemetry.ndjson, and the run id stamped on every kind of record made during a run."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async import telemetry as telemetry_module
from pontem_async.events import (
    RUN_FILE_NAME,
    RUN_ID_ATTRIBUTE,
    NoRunError,
    RunActiveError,
    next_run_id,
)
from pontem_async.profiler import Profiler
from pontem_async.testing import MemoryHandler

EVENT_SCHEMA = Draft202012Validator(
    json.loads(files("pontem_async").joinpath("schemas/event.json").read_text("utf-8"))
)


@pytest.fixture
def site(tmp_path: Path, running: Telemetry) -> Path:
    running.events.site_dir = tmp_path / "runs"
    return tmp_path / "runs"


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# ---------------------------------------------------------------------------- events


@pytest.mark.asyncio
async def test_an_event_returns_panoptes_envelope_and_reaches_the_handlers(
    running: Telemetry, memory: MemoryHandler
) -> None:
    envelope = running.events.event("weather", {"wind": 12.5}, meta={"source": "mast"})
    assert envelope["seq"] == 1
    assert envelope["type"] == "weather"
    assert envelope["data"] == {"wind": 12.5}
    assert envelope["meta"] == {"source": "mast"}
    assert isinstance(envelope["ts"], str)
    assert envelope["ts"].endswith("Z")
    assert running.events.event("weather", {"wind": 3})["seq"] == 2
    assert await running.flush(timeout=5)
    events = [r for r in memory.records if r.kind == "event"]
    assert [(e.type, dict(e.data), e.run_id) for e in events] == [
        ("weather", {"wind": 12.5}, None),
        ("weather", {"wind": 3}, None),
    ]
    assert events[0].meta == {"source": "mast"}
    assert events[0].resource == {"service.name": "test-svc"}


@pytest.mark.asyncio
async def test_current_keeps_the_latest_of_each_type_unless_make_current_is_false(
    running: Telemetry,
) -> None:
    events = running.events
    assert events.current() == {}
    assert events.current("weather") is None
    events.event("weather", {"wind": 1})
    events.event("state", {"name": "ready"})
    events.event("weather", {"wind": 2})
    events.event("weather", {"wind": 99}, make_current=False)
    current = events.current()
    assert sorted(current) == ["state", "weather"]
    assert current["weather"]["data"] == {"wind": 2}
    assert events.current("state")["data"] == {"name": "ready"}


@pytest.mark.asyncio
async def test_a_run_layer_wins_over_the_site_and_is_emptied_by_stop(
    running: Telemetry, site: Path
) -> None:
    events = running.events
    events.event("weather", {"wind": 1})
    events.start_run()
    assert events.current("weather")["data"] == {"wind": 1}  # the site's still shows
    events.event("weather", {"wind": 5})
    events.event("exposure", {"seq": 1})
    assert events.current("weather")["data"] == {"wind": 5}
    assert events.current("weather")["meta"] == {"run_id": "001"}
    events.stop_run()
    assert events.current() == {"weather": events.current("weather")}
    assert events.current("weather")["data"] == {"wind": 1}


@pytest.mark.parametrize(
    ("data", "meta", "message"),
    [
        ([1, 2], None, "data: expected a mapping"),
        ({"a": 1}, "m", "meta: expected a mapping or None"),
    ],
)
def test_event_rejects_bad_arguments_naming_them(data: object, meta: object, message: str) -> None:
    telemetry = Telemetry("t", handlers=[], install_signal_handlers=False)
    with pytest.raises(TypeError, match=message):
        telemetry.events.event("x", data, meta=meta)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="type: expected a non-empty str"):
        telemetry.events.event("", {})


# ---------------------------------------------------------------------------- run ids


def test_run_ids_count_up_from_001_as_panoptes_does(tmp_path: Path) -> None:
    telemetry = Telemetry("t", handlers=[], install_signal_handlers=False)
    events = telemetry.events
    ids = []
    for _ in range(3):
        ids.append(events.start_run(site_dir=tmp_path)["run_id"])
        events.stop_run()
    assert ids == ["001", "002", "003"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["001", "002", "003"]


def test_next_run_id_ignores_names_that_are_not_numbered_directories(tmp_path: Path) -> None:
    for name in ("041", "notes", "7b"):
        (tmp_path / name).mkdir()
    (tmp_path / "900").write_text("a file, not a run")
    assert next_run_id(tmp_path) == "042"
    assert next_run_id(tmp_path / "missing") == "001"


@settings(max_examples=40, deadline=None)
@given(numbers=st.lists(st.integers(0, 100_000), min_size=1, max_size=6), pad=st.integers(0, 6))
def test_next_run_id_is_one_more_than_the_largest_padded_to_the_widest(
    tmp_path_factory: pytest.TempPathFactory, numbers: list[int], pad: int
) -> None:
    directory = tmp_path_factory.mktemp("site")
    names = {str(n).zfill(pad) for n in numbers}
    for name in names:
        (directory / name).mkdir()
    result = next_run_id(directory)
    assert int(result) == max(numbers) + 1
    assert len(result) == max(3, len(str(max(numbers) + 1)), *(len(str(int(n))) for n in names))


def test_run_id_comes_from_the_argument_then_meta(tmp_path: Path) -> None:
    events = Telemetry("t", handlers=[], install_signal_handlers=False).events
    run = events.start_run(
        run_id="night-1", meta={"run_id": "ignored", "op": "ada"}, site_dir=tmp_path
    )
    assert run["run_id"] == "night-1"
    assert run["meta"] == {"run_id": "night-1", "op": "ada"}
    assert run["run_dir"] == str(tmp_path / "night-1")
    events.stop_run()
    assert (
        events.start_run(meta={"run_id": "from-meta"}, site_dir=tmp_path)["run_id"] == "from-meta"
    )
    events.stop_run()


def test_run_dir_relative_is_under_the_site_and_absolute_is_kept(tmp_path: Path) -> None:
    events = Telemetry("t", handlers=[], install_signal_handlers=False).events
    run = events.start_run(run_dir="nights/a", site_dir=tmp_path / "site")
    assert run["run_dir"] == str(tmp_path / "site" / "nights" / "a")
    assert (tmp_path / "site" / "nights" / "a" / RUN_FILE_NAME).exists()
    events.stop_run()
    run = events.start_run(run_dir=tmp_path / "elsewhere", site_dir=tmp_path / "site")
    assert run["run_dir"] == str(tmp_path / "elsewhere")
    events.stop_run()


def test_site_dir_argument_beats_the_environment_which_beats_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Telemetry("t", handlers=[], install_signal_handlers=False).events
    events.site_dir = tmp_path / "setting"
    assert events.start_run()["run_dir"] == str(tmp_path / "setting" / "001")
    events.stop_run()
    monkeypatch.setenv("PONTEM_SITE_DIR", str(tmp_path / "env"))
    assert events.start_run()["run_dir"] == str(tmp_path / "env" / "001")
    events.stop_run()
    assert events.start_run(site_dir=tmp_path / "arg")["run_dir"] == str(tmp_path / "arg" / "001")
    events.stop_run()


def test_a_second_start_conflicts_and_a_stop_without_run_says_so(tmp_path: Path) -> None:
    events = Telemetry("t", handlers=[], install_signal_handlers=False).events
    assert events.get_run() is None
    with pytest.raises(NoRunError, match="no run is active"):
        events.stop_run()
    started = events.start_run(meta={"op": "ada"}, site_dir=tmp_path)
    with pytest.raises(RunActiveError, match="'001' is already active"):
        events.start_run(site_dir=tmp_path)
    assert events.get_run() == started
    assert events.stop_run() == started
    assert events.get_run() is None


# ---------------------------------------------------------------------------- the run file


@pytest.mark.asyncio
async def test_events_of_a_run_are_appended_to_its_ndjson_and_match_the_schema(
    running: Telemetry, site: Path
) -> None:
    events = running.events
    events.event("before", {"n": 0})  # outside a run: no file
    run = events.start_run(meta={"op": "ada"})
    for n in range(3):
        events.event("exposure", {"seq": n, "exptime": 30.0}, meta={"camera": "c1"})
    events.stop_run()
    events.event("after", {"n": 9})
    lines = _lines(Path(run["run_dir"]) / RUN_FILE_NAME)
    for line in lines:
        EVENT_SCHEMA.validate(line)
    assert [(x["type"], x["data"]["seq"]) for x in lines] == [  # type: ignore[index]
        ("exposure", 0),
        ("exposure", 1),
        ("exposure", 2),
    ]
    assert {x["runId"] for x in lines} == {"001"}
    assert lines[0]["meta"] == {"camera": "c1", "run_id": "001"}
    assert lines[0]["resource"] == {"service.name": "test-svc", RUN_ID_ATTRIBUTE: "001"}
    # a second run of the same site appends to its own file
    run2 = events.start_run()
    events.event("exposure", {"seq": 0})
    events.stop_run()
    assert [x["runId"] for x in _lines(Path(run2["run_dir"]) / RUN_FILE_NAME)] == ["002"]
    assert len(_lines(Path(run["run_dir"]) / RUN_FILE_NAME)) == 3


def test_module_functions_use_the_default_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_telemetry: Telemetry
) -> None:
    monkeypatch.setenv("PONTEM_SITE_DIR", str(tmp_path))
    monkeypatch.setattr(telemetry_module, "_default", sync_telemetry)  # the real one untouched
    default = pa.get_default()
    assert default is sync_telemetry
    assert pa.get_run() is None
    run = pa.start_run(meta={"k": 1})
    try:
        assert default.resource[RUN_ID_ATTRIBUTE] == run["run_id"]
        assert pa.event("ping", {"n": 1})["meta"] == {"run_id": run["run_id"]}
        assert pa.current("ping")["data"] == {"n": 1}
        assert pa.current()["ping"]["seq"] == 1
        assert pa.get_run() == run
    finally:
        assert pa.stop_run() == run
    assert RUN_ID_ATTRIBUTE not in default.resource


# ---------------------------------------------------------------------------- run ids stamped


@pytest.mark.asyncio
async def test_every_record_kind_made_during_a_run_carries_its_id(
    running: Telemetry, memory: MemoryHandler, site: Path
) -> None:
    profiler = Profiler(running)

    @profiler.profile
    async def work() -> int:
        running.logger.info("inside the call")
        return 1

    log = running.get_logger("app")
    log.info("before the run")
    running.metrics.count("frames")
    running.events.start_run()
    log.info("during the run")
    await work()
    running.events.event("exposure", {"seq": 1})
    running.export_metrics()
    running.events.stop_run()
    log.info("after the run")
    await work()
    assert await running.flush(timeout=5)

    def run_of(record: object) -> object:
        return record.resource.get(RUN_ID_ATTRIBUTE)  # type: ignore[attr-defined]

    logs = {r.body: run_of(r) for r in memory.records if r.kind == "log"}
    assert logs["before the run"] is None
    assert logs["during the run"] == "001"
    assert logs["after the run"] is None
    profiles = [run_of(r) for r in memory.records if r.kind == "profile"]
    assert profiles == ["001", None]
    metrics = [(r.name, run_of(r)) for r in memory.records if r.kind == "metric"]
    assert ("frames", "001") in metrics
    events = [(r.run_id, run_of(r)) for r in memory.records if r.kind == "event"]
    assert events == [("001", "001")]


@pytest.mark.asyncio
async def test_reconfiguring_during_a_run_keeps_the_stamp(tmp_path: Path) -> None:
    first, second = MemoryHandler(name="first"), MemoryHandler(name="second")
    telemetry = Telemetry("svc", handlers=[first], install_signal_handlers=False)
    telemetry.start()
    telemetry.events.start_run(site_dir=tmp_path)
    telemetry.configure("svc2", handlers=[second], install_signal_handlers=False)
    telemetry.logger.info("after reconfiguring")
    assert await telemetry.flush(timeout=5)
    assert [dict(r.resource) for r in second.records if r.kind == "log"] == [
        {"service.name": "svc2", RUN_ID_ATTRIBUTE: "001"}
    ]
    telemetry.events.stop_run()
    assert telemetry.resource == {"service.name": "svc2"}
    await telemetry.shutdown(timeout=5)
