"""What both benchmark harnesses share: running one measurement in a fresh subprocess, and
what they print (the machine header and Markdown tables)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_average", "machine", "num", "run_child", "table", "versions_of"]

BENCH_DIR = Path(__file__).resolve().parent


def run_child(
    script: str, args: Sequence[str], name: str, params: dict[str, Any], root: Path,
    timeout: float,
) -> dict[str, Any]:
    """Run ``bench/<script> *args <workdir> <result.json> <params>`` in a fresh interpreter and
    return the JSON it wrote (plus ``wall`` seconds and any stderr noise), or a dict with an
    ``error`` when it failed or timed out. ``name`` names the workdir and the result file."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    result_path = root / f"{name}.json"
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH_DIR / script), *args, str(workdir), str(result_path),
           json.dumps(params)]  # fmt: skip
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=str(BENCH_DIR)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s", "wall": timeout}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result_path.exists():
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail), "wall": wall}
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    result["wall"] = wall
    noise = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
    if noise:
        result["stderr_lines"] = len(noise)
        result["stderr_first"] = noise[0][:200]
    return result


def machine() -> dict[str, str]:
    """CPU model, core count, memory, Python and OS of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "?"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
            memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
    }


def versions_of(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution (``not installed`` when missing)."""
    found: dict[str, str] = {}
    for name in names:
        if name in found:
            continue
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def load_average() -> str:
    """The 1/5/15-minute load averages, formatted."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def num(value: float, digits: int = 0) -> str:
    """``value`` with thousands separators and ``digits`` decimals."""
    return f"{value:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` has one ``l`` or ``r`` per column (default: the first
    column left-aligned, the others right-aligned)."""
    if align is None:
        align = "l" + "r" * (len(header) - 1)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        cells = [
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
