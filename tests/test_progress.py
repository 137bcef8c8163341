"""The progress display: drawn on a TTY only, at most once per interval, wiped when done."""

from __future__ import annotations

import io
import re

from hypothesis import given
from hypothesis import strategies as st

from pontem_async._progress import Progress, progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_at_all_is_written_when_the_stream_is_not_a_tty() -> None:
    stream = io.StringIO()
    with progress(total=1000, stream=stream, interval=0) as bar:
        for _ in range(1000):
            bar.advance()
        bar.draw()
        bar.clear()
    assert bar.count == 1000
    assert stream.getvalue() == ""


def test_a_tty_shows_counts_with_the_total_and_is_wiped_at_the_end() -> None:
    stream = FakeTTY()
    with progress(total=256, unit="messages", label="consume", stream=stream, interval=0) as bar:
        for _ in range(256):
            bar.advance()
    shown = stream.getvalue()
    assert shown.startswith("\rconsume: 64 / 256 messages (25%)")
    assert "\rconsume: 256 / 256 messages (100%)" in shown
    assert shown.endswith("\r\x1b[K")


def test_without_a_total_it_counts_and_clear_makes_room_for_other_text() -> None:
    stream = FakeTTY()
    bar = Progress(unit="records", stream=stream, interval=0)
    bar.advance(100)
    bar.clear()
    stream.write("a problem\n")
    bar.advance(100)
    bar.close()
    assert stream.getvalue() == "\r100 records\r\x1b[Ka problem\n\r200 records\r\x1b[K"
    bar.advance(1000)  # closed: counts, draws nothing
    assert stream.getvalue().endswith("\r200 records\r\x1b[K")


def test_short_work_shows_nothing_before_the_interval() -> None:
    stream = FakeTTY()
    with progress(stream=stream, interval=3600) as bar:
        bar.advance(10_000)
    assert stream.getvalue() == ""


def test_a_closed_terminal_stops_the_display_instead_of_raising() -> None:
    stream = FakeTTY()
    bar = Progress(stream=stream, interval=0)
    stream.close()
    bar.advance(64)
    assert not bar.enabled
    assert bar.count == 64


@given(steps=st.lists(st.integers(1, 500), max_size=30))
def test_the_count_is_the_sum_of_the_steps_and_drawn_counts_only_grow(steps: list[int]) -> None:
    stream = FakeTTY()
    with progress(stream=stream, interval=0) as bar:
        for n in steps:
            bar.advance(n)
    assert bar.count == sum(steps)
    drawn = [
        int(x.split()[0].replace(",", ""))
        for x in re.findall(r"\r([\d,]+ records)", stream.getvalue())
    ]
    assert drawn == sorted(drawn)
    assert all(n <= sum(steps) for n in drawn)
    assert bool(drawn) == (sum(steps) >= 64)
