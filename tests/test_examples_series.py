"""examples/training_loop.py runs as written, twice, and its curves continue across the runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "training_loop.py"
SCHEMAS = files("pontem_async").joinpath("schemas")
SERIES = Draft202012Validator(json.loads(SCHEMAS.joinpath("series.json").read_text("utf-8")))
LOG = Draft202012Validator(json.loads(SCHEMAS.joinpath("log.json").read_text("utf-8")))


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _lines(cwd: Path) -> list[dict[str, Any]]:
    path = cwd / "telemetry" / "records.jsonl"
    return [json.loads(raw) for raw in path.read_bytes().splitlines()]


def test_the_training_loop_writes_series_and_config_and_resumes(tmp_path: Path) -> None:
    first = _run(tmp_path, "--epochs", "3", "--replicas", "2")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""  # series go to the file, not to the console
    assert "train/loss of replica 0 is at step 299" in first.stdout
    assert "shutdown complete" in first.stdout

    second = _run(tmp_path, "--epochs", "1", "--replicas", "2")
    assert second.returncode == 0, second.stderr
    assert "resumed 4 series" in second.stdout
    assert "train/loss of replica 0 is at step 399" in second.stdout

    lines = _lines(tmp_path)
    configs = [line for line in lines if line["kind"] == "log"]
    assert len(configs) == 2  # once per process
    for line in configs:
        LOG.validate(line)
        assert line["body"] == "config"
        assert line["attributes"]["optimizer.lr"] == 0.05
        assert line["attributes"]["data.steps_per_epoch"] == 100

    series = [line for line in lines if line["kind"] == "series"]
    for line in series:
        SERIES.validate(line)
        assert len(line["values"]) == len(line["steps"])
    loss0 = [line for line in series if line["name"] == "train/loss"
             and line["labels"] == {"replica": "0"}]  # fmt: skip
    steps = [s for line in loss0 for s in line["steps"]]
    assert steps == list(range(400))
    assert all(len(line["values"]) == 100 for line in loss0)
    assert loss0[-1]["values"][-1] < loss0[0]["values"][0]  # it learned
    distance = [line for line in series if line["name"] == "eval/distance"]
    assert [(d["scale"], d["steps"]) for d in distance] == [("epoch", [i]) for i in range(4)]
