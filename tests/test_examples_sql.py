"""``examples/incidents_sqlite.py`` runs as written and finds the incidents it promises."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "incidents_sqlite.py"


def test_incidents_sqlite_example(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" fingerprint=")[0] for line in lines] == [
        "3 x unknown product [shop]",
        "2 x bad quantity [shop]",
    ]
    with closing(sqlite3.connect(tmp_path / "incidents.db")) as db:
        rows = db.execute(
            "SELECT message, function_name, request_id, route, level FROM error_logs ORDER BY id"
        ).fetchall()
    assert sorted(rows) == sorted(
        [("unknown product", "load_price", f"req-{n}", "/orders", "ERROR") for n in (2, 4, 6)]
        + [("bad quantity", "parse_quantity", f"req-{n}", "/orders", "ERROR") for n in (3, 5)]
    )
