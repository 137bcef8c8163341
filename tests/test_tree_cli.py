"""``pontem-async tree``: profile lines of JSONL files merged into one call tree.

The input is real output: ``ProfileRecord`` s with known durations, encoded by ``encode_line``
and spread over a rotated ``.gz`` file and the current file, with log lines and a broken line
among them. Every number of the text view is computed by hand below, so the checks compare whole
outputs. The speedscope file is checked for what speedscope needs to load it (frames, balanced
open/close events in time order inside ``[startValue, endValue]``), the collapsed stacks line by
line.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from pontem_async import _tree, _tree_model
from pontem_async._tree_model import CallTree, TreeNode
from pontem_async.cli import main
from pontem_async.encoding.jsonl import encode_line
from pontem_async.records import CallNode, Level, LogRecord, ProfileRecord, Record

T0 = 1_795_431_600_000_000_000
MS = 1_000_000
FAILED = {"type": "KeyError", "message": "'id'", "fingerprint": "0a" * 20}


class Spans:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.n:016x}"


def call(
    spans: Spans,
    name: str,
    ms: float,
    children: Sequence[CallNode] = (),
    *,
    error: dict[str, str] | None = None,
    **attributes: Any,
) -> CallNode:
    node = CallNode(name, spans(), None, T0, attributes=attributes)
    node.duration_ns = int(ms * MS)
    node.error = error
    for child in children:
        child.parent_span_id = node.span_id
    node.children = list(children)
    return node


def handle(i: int) -> ProfileRecord:
    """``Svc:handle`` call i (0-4): 10(i+1) ms; query 4(i+1) ms with fetch 1 ms (raises in call
    1); render 2 ms in even calls (unfinished in call 4); ``db:get`` 2 ms under both query and
    render in call 0 (one method, two paths: two nodes)."""
    s = Spans()
    query = [call(s, "Svc:handle.query.fetch", 1, error=FAILED if i == 1 else None)]
    render: list[CallNode] = []
    if i == 0:
        query.append(call(s, "db:get", 2))
        render.append(call(s, "db:get", 2))
    children = [call(s, "Svc:handle.query", 4 * (i + 1), query)]
    if i % 2 == 0:
        extra = {"unfinished": True} if i == 4 else {}
        children.append(call(s, "Svc:handle.render", 2, render, **extra))
    root = call(s, "Svc:handle", 10 * (i + 1), children, route="/a")
    return ProfileRecord(T0 + i, f"{i + 1:032x}", root, {"service.name": "svc"}, int(i == 4))


def batch() -> ProfileRecord:
    """``Svc:batch``: 100 ms around three concurrent steps of 50, 60 and 70 ms (gather), so
    its children's 180 ms exceed it: self time 0, not -80."""
    s = Spans()
    steps = [call(s, "Svc:batch.step", ms) for ms in (50, 60, 70)]
    return ProfileRecord(T0 + 9, "f" * 32, call(s, "Svc:batch", 100, steps))


def log(i: int) -> LogRecord:
    return LogRecord(T0 + i, Level.INFO, f"log {i}", {}, "app")


def write(path: Path, lines: Sequence[bytes | Record], *, gz: bool = False) -> None:
    data = b"".join(line if isinstance(line, bytes) else encode_line(line) for line in lines)
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """records.jsonl.1.gz (older) and records.jsonl (current): 6 profiles, logs, one bad line."""
    write(tmp_path / "records.jsonl.1.gz", [handle(0), log(0), handle(1), handle(2)], gz=True)
    write(tmp_path / "records.jsonl", [log(1), handle(3), b"{half a line\n", handle(4), batch()])
    return tmp_path


def tree(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    status = main(["tree", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


TEXT = [
    "method        calls  total ms  self ms   p50 ms   p95 ms  errors  unfinished",
    "Svc:handle        5   150.000   84.000   30.000   50.000       0           0",
    "├─ query          5    60.000   53.000   12.000   20.000       0           0",
    "│  ├─ fetch       5     5.000    5.000    1.000    1.000       1           0",
    "│  └─ db:get      1     2.000    2.000    2.000    2.000       0           0",
    "└─ render         3     6.000    4.000    2.000    2.000       0           1",
    "   └─ db:get      1     2.000    2.000    2.000    2.000       0           0",
    "Svc:batch         1   100.000    0.000  100.000  100.000       0           0",
    "└─ step           3   180.000  180.000   60.000   70.000       0           0",
]


def test_tree_merges_a_rotated_set_into_exact_numbers(
    capsys: pytest.CaptureFixture[str], files: Path
) -> None:
    status, out, err = tree(capsys, str(files / "records.jsonl"))
    assert (status, out) == (0, TEXT)
    assert err.splitlines() == [
        f"pontem-async tree: {files / 'records.jsonl'}:3: invalid line skipped: not JSON "
        + err.split("not JSON ", 1)[1].splitlines()[0]
    ]


def test_tree_reads_directories_and_single_files_alike(
    capsys: pytest.CaptureFixture[str], files: Path
) -> None:
    assert tree(capsys, str(files))[1] == TEXT
    status, out, _ = tree(capsys, str(files / "records.jsonl.1.gz"))
    assert (status, out[:2]) == (
        0,
        [
            "method        calls  total ms  self ms  p50 ms  p95 ms  errors  unfinished",
            "Svc:handle        3    60.000   32.000  20.000  30.000       0           0",
        ],
    )


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        (
            "name",
            [
                "Svc:batch",
                "└─ step",
                "Svc:handle",
                "├─ query",
                "│  ├─ db:get",
                "│  └─ fetch",
                "└─ render",
                "   └─ db:get",
            ],
        ),
        (
            "calls",
            [
                "Svc:handle",
                "├─ query",
                "│  ├─ fetch",
                "│  └─ db:get",
                "└─ render",
                "   └─ db:get",
                "Svc:batch",
                "└─ step",
            ],
        ),
        (
            "self",
            [
                "Svc:handle",
                "├─ query",
                "│  ├─ fetch",
                "│  └─ db:get",
                "└─ render",
                "   └─ db:get",
                "Svc:batch",
                "└─ step",
            ],
        ),
    ],
)
def test_tree_sort_orders_siblings_and_roots(
    capsys: pytest.CaptureFixture[str], files: Path, sort: str, order: list[str]
) -> None:
    status, out, _ = tree(capsys, str(files), "--sort", sort)
    assert status == 0
    width = out[0].index("calls")
    assert [line[:width].rstrip() for line in out[1:]] == order

    def rows(lines: list[str], width: int) -> list[tuple[str, list[str]]]:
        return sorted((line[:width].strip("│├└─ "), line[width:].split()) for line in lines)

    assert rows(out[1:], width) == rows(TEXT[1:], TEXT[0].index("calls"))  # only reordered


def test_tree_min_percent_hides_small_nodes_and_says_how_many(
    capsys: pytest.CaptureFixture[str], files: Path
) -> None:
    # 2% of 250 ms is 5 ms: fetch (5 ms) stays, both db:get (2 ms) go
    status, out, _ = tree(capsys, str(files), "--min-percent", "2")
    assert status == 0
    assert out == [
        "method       calls  total ms  self ms   p50 ms   p95 ms  errors  unfinished",
        "Svc:handle       5   150.000   84.000   30.000   50.000       0           0",
        "├─ query         5    60.000   53.000   12.000   20.000       0           0",
        "│  └─ fetch      5     5.000    5.000    1.000    1.000       1           0",
        "└─ render        3     6.000    4.000    2.000    2.000       0           1",
        "Svc:batch        1   100.000    0.000  100.000  100.000       0           0",
        "└─ step          3   180.000  180.000   60.000   70.000       0           0",
        "(2 nodes under 2% hidden)",
    ]
    assert tree(capsys, str(files), "--min-percent", "50")[1][1:] == [
        "Svc:handle      5   150.000   84.000  30.000  50.000       0           0",
        "(7 nodes under 50% hidden)",
    ]


def test_tree_root_keeps_only_the_named_roots(
    capsys: pytest.CaptureFixture[str], files: Path
) -> None:
    status, out, _ = tree(capsys, str(files), "--root", "Svc:batch")
    assert (status, out) == (
        0,
        [
            "method     calls  total ms  self ms   p50 ms   p95 ms  errors  unfinished",
            "Svc:batch      1   100.000    0.000  100.000  100.000       0           0",
            "└─ step        3   180.000  180.000   60.000   70.000       0           0",
        ],
    )
    both = tree(capsys, str(files), "--root", "Svc:batch", "--root", "Svc:handle")[1]
    assert both == TEXT
    status, out, err = tree(capsys, str(files), "--root", "Svc:nothing")
    assert (status, out) == (1, [])
    assert f"no profile records with root Svc:nothing in {files}" in err


COLLAPSED = [
    "Svc:handle 84000",
    "Svc:handle;query 53000",
    "Svc:handle;query;fetch 5000",
    "Svc:handle;query;db:get 2000",
    "Svc:handle;render 4000",
    "Svc:handle;render;db:get 2000",
    "Svc:batch;step 180000",  # Svc:batch has no self time: no line of its own
]


def test_tree_collapsed_writes_self_microseconds_per_stack(
    capsys: pytest.CaptureFixture[str], files: Path, tmp_path: Path
) -> None:
    status, out, err = tree(capsys, str(files), "--format", "collapsed")
    assert (status, out) == (0, COLLAPSED)
    assert "invalid line skipped" in err
    target = tmp_path / "out.folded"
    status, out, _ = tree(capsys, str(files), "--format", "collapsed", "-o", str(target))
    assert (status, out) == (0, [])
    assert target.read_text("utf-8").splitlines() == COLLAPSED


def check_speedscope(document: dict[str, Any]) -> dict[str, dict[str, int]]:
    """What speedscope needs to import a file, checked; returns per profile the time each
    frame name is open (its inclusive time, summed over its openings)."""
    assert document["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = document["shared"]["frames"]
    assert all(isinstance(f["name"], str) for f in frames)
    assert len({f["name"] for f in frames}) == len(frames)
    assert document["profiles"]
    assert 0 <= document["activeProfileIndex"] < len(document["profiles"])
    open_time: dict[str, dict[str, int]] = {}
    for profile in document["profiles"]:
        assert profile["type"] == "evented"
        assert profile["unit"] == "nanoseconds"
        start, end = profile["startValue"], profile["endValue"]
        assert start <= end
        stack: list[tuple[int, int]] = []
        last = start
        times = open_time.setdefault(profile["name"], {})
        for event in profile["events"]:
            assert set(event) == {"type", "frame", "at"}
            assert 0 <= event["frame"] < len(frames)
            assert last <= event["at"] <= end
            last = event["at"]
            if event["type"] == "O":
                stack.append((event["frame"], event["at"]))
            else:
                assert event["type"] == "C"
                frame, opened = stack.pop()
                assert frame == event["frame"]  # balanced: closes the innermost open frame
                name = frames[frame]["name"]
                times[name] = times.get(name, 0) + event["at"] - opened
        assert stack == []
        assert profile["events"][-1]["at"] == end
    return open_time


def test_tree_speedscope_file_is_balanced_and_keeps_every_time(
    capsys: pytest.CaptureFixture[str], files: Path, tmp_path: Path
) -> None:
    target = tmp_path / "profile.speedscope.json"
    status, out, _ = tree(capsys, str(files), "--format", "speedscope", "-o", str(target))
    assert (status, out) == (0, [])
    document = json.loads(target.read_text("utf-8"))
    assert check_speedscope(document) == {
        "Svc:handle": {
            "Svc:handle": 150 * MS,
            "query": 60 * MS,
            "fetch": 5 * MS,
            "db:get": 4 * MS,
            "render": 6 * MS,
        },
        # concurrent steps laid end to end: the root is as wide as its children
        "Svc:batch": {"Svc:batch": 180 * MS, "step": 180 * MS},
    }
    assert [p["name"] for p in document["profiles"]] == ["Svc:handle", "Svc:batch"]
    assert [f["name"] for f in document["shared"]["frames"]] == [
        "Svc:handle",
        "query",
        "fetch",
        "db:get",
        "render",
        "Svc:batch",
        "step",
    ]
    assert document["exporter"].startswith("pontem-async ")
    # to stdout as well, the same document
    status, out, _ = tree(capsys, str(files), "--format", "speedscope")
    assert orjson.loads("\n".join(out)) == document


def test_tree_reports_malformed_trees_by_trace_and_skips_them_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = orjson.loads(encode_line(handle(0)))
    broken["root"]["children"][0]["duration_ns"] = "4ms"
    no_root = {"kind": "profile", "traceId": "e" * 32}
    write(
        tmp_path / "p.jsonl",
        [orjson.dumps(broken) + b"\n", orjson.dumps(no_root) + b"\n", b"[1, 2]\n", handle(1)],
    )
    status, out, err = tree(capsys, str(tmp_path / "p.jsonl"))
    assert status == 0
    assert out[1] == "Svc:handle       1    20.000   12.000  20.000  20.000       0           0"
    assert err.splitlines() == [
        f"pontem-async tree: trace {1:032x}: invalid call tree skipped: "
        "root.children[0].duration_ns: expected ns >= 0, got '4ms'",
        f"pontem-async tree: trace {'e' * 32}: invalid call tree skipped: "
        "root: expected an object, got NoneType",
        f"pontem-async tree: {tmp_path / 'p.jsonl'}:3: invalid line skipped: "
        "expected a JSON object, got list",
    ]


def test_tree_without_profiles_or_files_exits_1_before_printing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "logs.jsonl", [log(0), log(1)])
    status, out, err = tree(capsys, str(tmp_path / "logs.jsonl"))
    assert (status, out) == (1, [])
    assert err == f"pontem-async tree: no profile records in {tmp_path / 'logs.jsonl'}\n"
    status, out, err = tree(capsys, str(tmp_path / "logs.jsonl"), str(tmp_path / "missing"))
    assert (status, out) == (1, [])
    assert err == f"pontem-async tree: {tmp_path / 'missing'}: no such file or directory\n"


def test_tree_rejects_a_bad_min_percent(capsys: pytest.CaptureFixture[str], files: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tree", str(files), "--min-percent", "120"])
    assert exit_info.value.code == 2
    assert "expected a percentage from 0 to 100, got '120'" in capsys.readouterr().err


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tree_shows_a_records_counter_only_on_a_tty(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(tmp_path / "many.jsonl", [handle(i % 4) for i in range(200)])
    monkeypatch.setattr(_tree, "_PROGRESS_SECONDS", 0.0)
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["tree", str(tmp_path / "many.jsonl"), "--format", "collapsed"]) == 0
    shown = terminal.getvalue()
    assert shown.startswith("\rpontem-async tree: 64 records read")
    assert "\rpontem-async tree: 192 records read" in shown
    assert shown.endswith("\r\x1b[K")  # wiped before the output
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert main(["tree", str(tmp_path / "many.jsonl"), "--format", "collapsed"]) == 0
    assert sys.stderr.getvalue() == ""
    capsys.readouterr()


def test_tree_indents_with_spaces_where_box_drawing_cannot_be_encoded() -> None:
    merged = CallTree()
    for record in [handle(0), handle(2)]:
        merged.add(orjson.loads(encode_line(record)))
    names = [line[:10].rstrip() for line in _tree.render_text(merged, "name", 0, box=False)]
    assert names == [
        "method",
        "Svc:handle",
        "  query",
        "    db:get",
        "    fetch",
        "  render",
        "    db:get",
    ]


def test_percentiles_are_nearest_rank_and_exact_up_to_the_limit() -> None:
    node = TreeNode("x", None)
    for ns in range(20, 0, -1):
        node.add(ns, ns, False, False)
    assert node.percentiles(50, 95, 100) == (10, 19, 20)
    assert not node.estimated
    assert TreeNode("empty", None).percentiles(50) is None


def test_percentiles_past_the_limit_come_from_a_deterministic_reservoir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tree_model, "EXACT_LIMIT", 200)

    def sampled() -> TreeNode:
        node = TreeNode("x", None)
        for ns in range(1, 5001):
            node.add((ns * 7919) % 5000 + 1, 0, False, False)  # 1..5000, shuffled
        return node

    first, second = sampled(), sampled()
    assert first.estimated
    assert (first.calls, first.total_ns) == (5000, 5000 * 5001 // 2)  # counts stay exact
    assert first.percentiles(50, 95) == second.percentiles(50, 95)
    p50, p95 = first.percentiles(50, 95) or (0, 0)
    assert abs(p50 - 2500) < 500
    assert abs(p95 - 4750) < 250


def test_estimated_percentiles_are_marked_in_the_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_tree_model, "EXACT_LIMIT", 2)
    write(tmp_path / "p.jsonl", [handle(i) for i in range(3)])
    out = tree(capsys, str(tmp_path / "p.jsonl"))[1]
    assert [cell[0] for cell in out[1].split()[4:6]] == ["~", "~"]


def test_a_call_without_a_duration_counts_as_unfinished() -> None:
    merged = CallTree()
    merged.add({"root": {"name": "r", "duration_ns": None, "children": []}})
    root = merged.roots["r"]
    assert (root.calls, root.unfinished, root.total_ns, root.percentiles(50)) == (1, 1, 0, None)


def test_a_500_level_tree_is_merged_and_exported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    depth = 500  # a JSON reader's limit: orjson reads 1024 levels of nesting, 2 per call
    # written by hand: JSON writers (orjson, the stdlib) refuse or recurse that deep
    opening = "".join(
        f'{{"name":"f{level}","duration_ns":{1000 * (depth - level + 1)},"children":['
        for level in range(depth)
    )
    innermost = f'{{"name":"f{depth}","duration_ns":1000,"children":[]}}'
    line = '{"kind":"profile","root":' + opening + innermost + "]}" * depth + "}\n"
    (tmp_path / "deep.jsonl").write_text(line)
    status, out, _ = tree(capsys, str(tmp_path / "deep.jsonl"), "--format", "collapsed")
    assert (status, len(out)) == (0, depth + 1)
    assert out[-1] == ";".join(f"f{i}" for i in range(depth + 1)) + " 1"
    assert tree(capsys, str(tmp_path / "deep.jsonl"))[0] == 0
    assert tree(capsys, str(tmp_path / "deep.jsonl"), "--format", "speedscope")[0] == 0


def test_tree_runs_as_python_m_pontem_async(files: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pontem_async", "tree", str(files), "--format", "collapsed"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout.splitlines()) == (0, COLLAPSED)
    assert "invalid line skipped" in proc.stderr
