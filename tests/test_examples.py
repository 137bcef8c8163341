"""Every example in examples/ runs as written and leaves the records it promises on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )


def _records(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "telemetry" / "records.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_sync_script(tmp_path: Path) -> None:
    result = _run(tmp_path, str(EXAMPLES / "sync_script.py"))
    assert result.returncode == 0, result.stderr
    records = _records(tmp_path)
    assert [r["body"] for r in records] == ["region processed"] * 3 + ["ratio failed"]
    assert [r["attributes"].get("region") for r in records[:3]] == ["eu", "us", "apac"]  # type: ignore[union-attr]
    assert records[3]["attributes"]["exception.type"] == "ZeroDivisionError"  # type: ignore[index]
    assert "ratio failed" in result.stderr  # the console handler echoes errors


def test_asyncio_worker(tmp_path: Path) -> None:
    result = _run(tmp_path, str(EXAMPLES / "asyncio_worker.py"))
    assert result.returncode == 0, result.stderr
    assert "shutdown complete" in result.stdout
    records = _records(tmp_path)
    failed = [r for r in records if r["body"] == "job failed"]
    done = [r for r in records if r["body"] == "job done"]
    assert len(failed) == 8
    assert len(done) == 42
    fingerprints = {r["attributes"]["exception.fingerprint"] for r in failed}  # type: ignore[index]
    assert len(fingerprints) == 1


def test_stdlib_app(tmp_path: Path) -> None:
    result = _run(tmp_path, str(EXAMPLES / "stdlib_app.py"))
    assert result.returncode == 0, result.stderr
    by_body = {r["body"]: r for r in _records(tmp_path)}
    assert by_body["invoice sent"]["attributes"]["invoice_id"] == "inv-1"  # type: ignore[index]
    assert by_body["invoice sent"]["logger"] == "billing"
    assert by_body["mail failed"]["attributes"]["exception.type"] == "ConnectionError"  # type: ignore[index]


@pytest.mark.parametrize("config", ["config.json", "config.yaml"])
def test_from_config(tmp_path: Path, config: str) -> None:
    result = _run(tmp_path, str(EXAMPLES / "from_config.py"), str(EXAMPLES / config))
    assert result.returncode == 0, result.stderr
    records = _records(tmp_path)
    assert [r["body"] for r in records] == ["cart priced", "payment slow"]
    assert records[0]["resource"] == {
        "service.name": "checkout",
        "service.version": "1.2.0",
        "deployment.environment": "dev",
    }
    assert "payment slow" in result.stderr
    assert "cart priced" not in result.stderr
