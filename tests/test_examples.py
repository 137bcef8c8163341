"""Every example in examples/ runs as written and leaves the records it promises on disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
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


def test_phanos_migrated(tmp_path: Path) -> None:
    result = _run(tmp_path, str(EXAMPLES / "phanos_migrated.py"))
    assert result.returncode == 0, result.stderr
    profiles = [line for line in result.stdout.splitlines() if " PROFILE " in line]
    assert len(profiles) == 4  # phanos' stdout StreamHandler: one line per root call
    assert all('root={"name":"Billing:charge"' in line for line in profiles)
    assert sum('"type":"ConnectionError"' in line for line in profiles) == 1
    assert result.stdout.endswith("roots started: 4\n")  # the before_root_func hook ran
    assert "invoice 3 not sent" in result.stderr


def test_aiohttp_service_serves_until_interrupted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "aiohttp_service.py"), "--port", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.match(r"serving on (http://127\.0\.0\.1:\d+) ", first)
        assert match, first + (server.stderr.read() if server.poll() is not None else "")
        base = match[1]
        statuses = [_get(f"{base}/orders/{n}", {"X-Request-ID": f"r-{n}"}) for n in (7, 10, 0)]
        assert statuses == [(200, "r-7"), (500, None), (404, "r-0")]
        assert _get(f"{base}/metrics")[0] == 200
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert out == "stopped\n"
    records = _records(tmp_path)
    trees = [r for r in records if r["kind"] == "profile"]
    assert sorted(t["root"]["attributes"]["request_id"] for t in trees) == ["r-0", "r-10", "r-7"]
    served = [r for r in records if r.get("body") == "order served"]
    assert [r["attributes"]["request_id"] for r in served] == ["r-7"]  # type: ignore[index]
    failed = [r for r in records if r.get("body") == "request failed"]
    assert [r["attributes"]["exception.type"] for r in failed] == ["LookupError"]  # type: ignore[index]
    assert "request failed" in err  # echoed on stderr by the embedded default


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("X-Request-ID")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("X-Request-ID")
