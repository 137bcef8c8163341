"""The OTLP handler's pure decisions: which answers are retried, how long to wait, how the
retry buffer stays within its bounds."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pontem_async.handlers._otlp_buffer import Pending, RetryBuffer
from pontem_async.handlers._otlp_policy import (
    MAX_RETRY_AFTER,
    Backoff,
    PartialSuccess,
    classify,
    error_message,
    partial_success,
    retry_after_seconds,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "sent"), (202, "sent"), (429, "retry"), (502, "retry"), (503, "retry"),
     (504, "retry"), (400, "rejected"), (401, "rejected"), (404, "rejected"),
     (413, "rejected"), (500, "rejected"), (501, "rejected"), (302, "rejected")],
)  # fmt: skip
def test_only_429_502_503_504_are_retried(status: int, outcome: str) -> None:
    assert classify(status) == outcome


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("100000", MAX_RETRY_AFTER),
        (email.utils.formatdate(NOW + 42, usegmt=True), 42.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00", 0.0),  # no zone: read as GMT, long past
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


@settings(max_examples=100, deadline=None)
@given(
    initial=st.floats(0.001, 10),
    factor=st.floats(1, 100),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=80),
)
def test_backoff_doubles_with_jitter_up_to_its_cap(
    initial: float, factor: float, draws: list[float]
) -> None:
    cap = initial * factor
    values = iter(draws)
    backoff = Backoff(initial, cap, random=lambda: next(values))
    for n in range(len(draws)):
        ceiling = min(cap, initial * 2**n)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    backoff.random = lambda: 0.0
    assert backoff.next_delay() == initial / 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"", None),
        (b"{}", None),
        (b'{"partialSuccess": null}', None),
        (b'{"partialSuccess": {}}', None),
        (b'{"partialSuccess": {"rejectedLogRecords": "0", "errorMessage": ""}}', None),
        (b"<html>", None),
        (b'{"partialSuccess": {"rejectedSpans": "3"}}', PartialSuccess(3, "")),
        (b'{"partialSuccess": {"rejectedDataPoints": 2, "errorMessage": "bad unit"}}',
         PartialSuccess(2, "bad unit")),
        (b'{"partialSuccess": {"errorMessage": "deprecated field"}}',
         PartialSuccess(0, "deprecated field")),
    ],
)  # fmt: skip
def test_partial_success_is_read_only_when_filled(
    answer: bytes, expected: PartialSuccess | None
) -> None:
    assert partial_success(answer) == expected


def test_error_message_prefers_the_status_message_and_is_shortened() -> None:
    assert error_message(b'{"code": 3, "message": "invalid  body\\n here"}') == "invalid body here"
    assert error_message(b"plain text") == "plain text"
    assert error_message(b"x" * 1000, limit=20) == "x" * 17 + "..."


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=60),
    max_bodies=st.integers(1, 10),
    max_bytes=st.integers(50, 200),
)
def test_the_retry_buffer_keeps_the_newest_within_both_bounds(
    sizes: list[int], max_bodies: int, max_bytes: int
) -> None:
    buffer = RetryBuffer(max_bodies, max_bytes)
    added, evicted = [], []
    for n, size in enumerate(sizes):
        item = Pending("logs", "u", b"x" * size, n + 1)
        added.append(item)
        evicted.extend(buffer.add(item))
        assert len(buffer) <= max_bodies
        assert buffer.bytes <= max_bytes
        assert buffer.bytes == sum(i.size for i in buffer)
        assert buffer.records == sum(i.records for i in buffer)
    kept = list(buffer)
    assert evicted + kept == added  # drop-oldest: what stays is the newest, in order


def test_a_body_taken_for_sending_is_never_evicted_and_goes_back_first() -> None:
    buffer = RetryBuffer(2, 1000)
    first, second, third = (Pending("logs", "u", b"x", n) for n in (1, 2, 3))
    buffer.add(first)
    assert buffer.take() is first
    buffer.add(second)
    assert buffer.add(third) == [second]  # the in-flight one counts, but stays
    buffer.put_back(first)
    assert list(buffer) == [first, third]
    assert buffer.take() is first
    buffer.finish(first)
    assert (list(buffer), buffer.records) == ([third], 3)
