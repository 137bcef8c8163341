"""``pa.log_config`` / ``pa.log_attributes``: nested configuration flattened to dotted keys,
recorded once per run as one log record every handler carries."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import pontem_async as pa
from pontem_async import Telemetry
from pontem_async._flatten import CONFIG_LOGGER, flatten
from pontem_async.handlers import RotatingFileHandler
from pontem_async.records import LogRecord
from pontem_async.testing import MemoryHandler, capture

LOG = Draft202012Validator(
    json.loads(files("pontem_async").joinpath("schemas/log.json").read_text("utf-8"))
)


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    telemetry = Telemetry("trainer", handlers=[], install_signal_handlers=False)
    yield telemetry
    telemetry.shutdown_sync(timeout=1)


class Activation(enum.Enum):
    RELU = "relu"


@dataclasses.dataclass
class Optimizer:
    name: str = "adam"
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)


# ---------------------------------------------------------------------------- flattening


def test_nested_dicts_lists_dataclasses_and_namespaces_flatten_to_dotted_keys() -> None:
    config = {
        "optimizer": Optimizer(),
        "layers": [64, {"units": 32, "act": Activation.RELU}],
        "data": argparse.Namespace(path=Path("/data/train"), shuffle=True),
        "seed": np.int64(7),
        "dropout": np.float32(0.5),
        "mask": np.array([1, 0]),
        "schedule": None,
        "empty": {},
        "none_yet": [],
        3: "int key",
    }
    assert flatten(config) == {
        "optimizer.name": "adam",
        "optimizer.lr": 3e-4,
        "optimizer.betas.0": 0.9,
        "optimizer.betas.1": 0.999,
        "layers.0": 64,
        "layers.1.units": 32,
        "layers.1.act": "Activation.RELU",
        "data.path": "/data/train",
        "data.shuffle": True,
        "seed": 7,
        "dropout": 0.5,
        "mask.0": 1,
        "mask.1": 0,
        "schedule": None,
        "empty": {},
        "none_yet": [],
        "3": "int key",
    }


keys = st.text(st.characters(blacklist_characters=".", blacklist_categories=["Cs"]), min_size=1)
leaves = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, min_size=1, max_size=4)
    | st.dictionaries(keys, children, min_size=1, max_size=4),
    max_leaves=20,
)


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """The inverse of flatten for dot-free keys (lists come back as index dicts)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def as_index_dicts(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: as_index_dicts(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return {str(i): as_index_dicts(v) for i, v in enumerate(tree)}
    return tree


@settings(max_examples=80, deadline=None)
@given(config=st.dictionaries(keys, trees, max_size=5))
def test_flattening_loses_nothing(config: dict[str, Any]) -> None:
    flat = flatten(config)
    assert unflatten(flat) == as_index_dicts(config)
    assert all(isinstance(k, str) and k for k in flat)


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ([1, 2], "expected a mapping"),
        ("lr=0.1", "expected a mapping"),
        ({"": 1}, "keys must not be empty"),
        ({"a": {"": 1}}, "keys must not be empty under 'a'"),
        ({("a", "b"): 1}, "keys must be str, got tuple"),
        ({"a.b": 1, "a": {"b": 2}}, "two entries flatten to the same key 'a.b'"),
    ],
)
def test_what_cannot_be_flattened_raises_naming_the_argument(mapping: Any, fragment: str) -> None:
    with pytest.raises(pa.ValidationError, match=r"^mapping: ") as caught:
        flatten(mapping)
    assert fragment in str(caught.value)
    assert caught.value.argument == "mapping"


def test_a_structure_containing_itself_is_refused() -> None:
    looped: dict[str, Any] = {"a": {}}
    looped["a"]["back"] = looped
    with pytest.raises(pa.ValidationError, match=r"contains itself at 'a\.back'"):
        flatten(looped)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["n"] = node = {}
    with pytest.raises(pa.ValidationError, match="nested deeper than 64"):
        flatten(deep)


@pytest.mark.parametrize("prefix", [None, 3, " env", "env.", ".env"])
def test_a_bad_prefix_is_refused(tel: Telemetry, prefix: Any) -> None:
    with pytest.raises(pa.ValidationError, match=r"^prefix: "):
        pa.log_attributes(prefix, {"a": 1}, telemetry=tel)


# ---------------------------------------------------------------------------- recording


def test_log_config_records_one_log_record_with_the_flat_attributes(tel: Telemetry) -> None:
    with capture(tel) as cap:
        assert pa.log_config({"optimizer": {"lr": 0.1}, "epochs": 3}, telemetry=tel)
    (record,) = cap.records
    assert isinstance(record, LogRecord)
    assert (record.body, record.logger, record.severity) == ("config", CONFIG_LOGGER, 9)
    assert record.attributes == {"optimizer.lr": 0.1, "epochs": 3}
    assert record.resource == {"service.name": "trainer"}


def test_the_same_config_is_recorded_once_per_run_and_a_changed_one_again(
    tel: Telemetry, tmp_path: Path
) -> None:
    config = {"optimizer": {"lr": 0.1}, "layers": [64, 64]}
    with capture(tel) as cap:
        assert pa.log_config(config, telemetry=tel)
        assert not pa.log_config({"layers": [64, 64], "optimizer": {"lr": 0.1}}, telemetry=tel)
        assert pa.log_config({**config, "optimizer": {"lr": 0.05}}, telemetry=tel)
        assert pa.log_attributes("env", {"name": "cartpole"}, telemetry=tel)
        assert not pa.log_attributes("env", {"name": "cartpole"}, telemetry=tel)
        tel.events.start_run(run_id="r1", site_dir=tmp_path)
        assert pa.log_config(config, telemetry=tel)  # a new run records it again
        assert not pa.log_config(config, telemetry=tel)
        tel.events.stop_run()
        assert not pa.log_config(config, telemetry=tel)  # outside runs: already recorded
    logs = [r for r in cap.records if isinstance(r, LogRecord)]
    assert [(r.body, dict(r.attributes)) for r in logs] == [
        ("config", {"optimizer.lr": 0.1, "layers.0": 64, "layers.1": 64}),
        ("config", {"optimizer.lr": 0.05, "layers.0": 64, "layers.1": 64}),
        ("attributes", {"env.name": "cartpole"}),
        ("config", {"optimizer.lr": 0.1, "layers.0": 64, "layers.1": 64}),
    ]
    assert (logs[-1].resource or {}).get("pontem.run_id") == "r1"


def test_nothing_is_recorded_or_remembered_when_no_handler_takes_info_logs() -> None:
    memory = MemoryHandler(name="memory", level="warn")
    telemetry = Telemetry("trainer", handlers=[memory], install_signal_handlers=False)
    try:
        assert not pa.log_config({"a": 1}, telemetry=telemetry)
        telemetry.configure("trainer", handlers=[MemoryHandler(name="m2")])
        assert pa.log_config({"a": 1}, telemetry=telemetry)
    finally:
        telemetry.shutdown_sync(timeout=5)


def test_the_config_line_in_the_file_is_a_valid_log_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    telemetry = Telemetry(
        "trainer",
        handlers=[RotatingFileHandler(path, name="file")],
        install_signal_handlers=False,
    )
    telemetry.start()
    pa.log_config({"model": {"depth": 12, "act": Activation.RELU}, "lr": float("nan")},
                  telemetry=telemetry)  # fmt: skip
    telemetry.shutdown_sync(timeout=5)
    (line,) = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    LOG.validate(line)
    assert (line["body"], line["logger"]) == ("config", CONFIG_LOGGER)
    assert line["attributes"] == {"model.depth": 12, "model.act": "Activation.RELU", "lr": "NaN"}
