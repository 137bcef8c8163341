"""Metric types, validation, pontem's shortcuts, the timer, caps, threads and snapshots."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from pontem_async import _timer, metrics
from pontem_async._config_schema import MetricsSettings
from pontem_async._registry import LABEL_SETS_LIMIT, NAME_LIMIT
from pontem_async._timer import RECORD_BUCKETS
from pontem_async.metrics import MetricsRegistry
from pontem_async.records import HistogramValue, MetricPoint, MetricRecord, SummaryValue

NOW = 1_700_000_000_000_000_000


def exactly(message: str) -> str:
    """A ``match=`` pattern for the whole message."""
    return f"^{re.escape(message)}$"


@pytest.fixture
def reg() -> MetricsRegistry:
    return MetricsRegistry()


@pytest.fixture
def default_registry() -> Iterator[MetricsRegistry]:
    """The default instance's registry, emptied before and after the test."""
    registry = metrics.registry()
    registry.clear()
    yield registry
    registry.clear()


def by_name(reg: MetricsRegistry) -> dict[str, MetricRecord]:
    return {record.name: record for record in reg.snapshot(NOW)}


def values(reg: MetricsRegistry, name: str) -> dict[tuple[tuple[str, str], ...], Any]:
    """Series values of one metric keyed by their label pairs."""
    return {tuple(p.labels.items()): p.value for p in by_name(reg)[name].points}


# ---------------------------------------------------------------------- declarations


def test_a_counter_counts_per_label_set(reg: MetricsRegistry) -> None:
    requests = reg.counter("requests", "Requests served", unit="1", labels=["route"])
    requests.inc(labels={"route": "/a"})
    requests.inc(5, labels={"route": "/a"})
    requests.labels(route="/b").inc()
    requests.labels("/b").inc(2.5)
    a, b = requests.labels(route="/a"), requests.labels(route="/b")
    assert reg.snapshot(NOW) == [
        MetricRecord(
            NOW,
            "requests",
            "counter",
            "1",
            "Requests served",
            (
                MetricPoint({"route": "/a"}, a.start_time, 6.0),
                MetricPoint({"route": "/b"}, b.start_time, 3.5),
            ),
        )
    ]


def test_every_type_snapshots_its_current_value(reg: MetricsRegistry) -> None:
    reg.gauge("depth").set(3)
    reg.gauge("depth").inc(2)
    reg.gauge("depth").dec(0.5)
    latency = reg.histogram("latency", unit="s", buckets=[0.1, 1.0])
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        latency.observe(value)
    reg.summary("size").observe(3)
    reg.summary("size").observe(4.5)
    reg.info("build").info({"version": "1.2", "commit": "abc"})
    reg.enum("phase", states=["idle", "running"]).state("running")
    snap = by_name(reg)
    assert [(r.type, r.points[0].value, r.states) for r in snap.values()] == [
        ("gauge", 4.5, ()),
        ("histogram", HistogramValue(5, 8.65, (0.1, 1.0), (2, 2, 1)), ()),
        ("summary", SummaryValue(2, 7.5), ()),
        ("info", {"version": "1.2", "commit": "abc"}, ()),
        ("enum", "running", ("idle", "running")),
    ]


def test_histogram_buckets_are_inclusive_upper_bounds_and_sum_to_count(
    reg: MetricsRegistry,
) -> None:
    h = reg.histogram("h", buckets=[1, 2, 3, float("inf")])  # a trailing +Inf is implied
    for value in (0, 1, 1.5, 2, 3, 3.01, -5):
        h.observe(value)
    point = by_name(reg)["h"].points[0].value
    assert point == HistogramValue(7, 5.51, (1.0, 2.0, 3.0), (3, 2, 1, 1))
    assert isinstance(point, HistogramValue)
    assert len(point.bucket_counts) == len(point.bounds) + 1
    assert sum(point.bucket_counts) == point.count


def test_unlabelled_metrics_exist_from_declaration_and_labelled_ones_from_first_use(
    reg: MetricsRegistry,
) -> None:
    reg.counter("idle")
    reg.enum("state", states=["a", "b"])
    reg.gauge("by_route", labels=["route"])
    assert [(r.name, [p.value for p in r.points]) for r in reg.snapshot(NOW)] == [
        ("idle", [0.0]),
        ("state", ["a"]),
    ]


def test_declaring_again_returns_the_same_object(reg: MetricsRegistry) -> None:
    c = reg.counter("c", labels=["a", "b"])
    assert reg.counter("c", "now described", labels=["b", "a"]) is c
    assert c.description == "now described"
    h = reg.histogram("h", buckets=[1, 2])
    assert reg.histogram("h") is h
    assert reg.histogram("h", buckets=[1, 2]) is h
    assert reg.get("h") is h
    assert len(reg) == 2


@pytest.mark.parametrize(
    ("redeclare", "message"),
    [
        (
            lambda r: r.gauge("m", labels=["a"]),
            "name: 'm' is already declared and it is a counter, not a gauge",
        ),
        (
            lambda r: r.counter("m", labels=["b"]),
            "name: 'm' is already declared and its labels are ['a'], not ['b']",
        ),
        (
            lambda r: r.counter("m", unit="s", labels=["a"]),
            "name: 'm' is already declared and its unit is 'ms', not 's'",
        ),
        (
            lambda r: r.histogram("h", buckets=[1, 3]),
            "name: 'h' is already declared and its buckets are [1.0, 2.0], not [1.0, 3.0]",
        ),
        (
            lambda r: r.enum("e", states=["x", "z"]),
            "name: 'e' is already declared and its states are ['x', 'y'], not ['x', 'z']",
        ),
    ],
)
def test_a_conflicting_redeclaration_raises_naming_the_conflict(
    reg: MetricsRegistry, redeclare: Any, message: str
) -> None:
    reg.counter("m", unit="ms", labels=["a"])
    reg.histogram("h", buckets=[1, 2])
    reg.enum("e", states=["x", "y"])
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        redeclare(reg)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        (
            "1abc",
            ValueError,
            "name: expected a metric name matching [a-zA-Z_:][a-zA-Z0-9_:.]*, got '1abc'",
        ),
        ("", ValueError, "name: expected a metric name matching [a-zA-Z_:][a-zA-Z0-9_:.]*, got ''"),
        (
            "a-b",
            ValueError,
            "name: expected a metric name matching [a-zA-Z_:][a-zA-Z0-9_:.]*, got 'a-b'",
        ),
        (3, TypeError, "name: expected a str, got int 3"),
    ],
)
def test_invalid_metric_names_are_refused(
    reg: MetricsRegistry, name: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=exactly(message)):
        reg.counter(name)


def test_dotted_and_colon_names_are_accepted_and_stored_as_given(reg: MetricsRegistry) -> None:
    reg.counter("model.inference").inc()
    reg.gauge("ns:queue.depth").set(1)
    assert [r.name for r in reg.snapshot(NOW)] == ["model.inference", "ns:queue.depth"]


def test_names_that_clash_in_the_exposition_are_refused(reg: MetricsRegistry) -> None:
    reg.counter("a.b")
    with pytest.raises(
        ValueError,
        match=exactly(
            "name: 'a_b' would clash with 'a.b' in the Prometheus exposition (both use 'a_b')"
        ),
    ):
        reg.gauge("a_b")
    with pytest.raises(ValueError, match=r"would clash with 'a\.b'"):
        reg.gauge("a_b_total")
    with pytest.raises(ValueError, match=r"would clash with 'pontem\.dropped_records'"):
        reg.counter("pontem_dropped_records_total")


@pytest.mark.parametrize(
    ("declare", "error", "message"),
    [
        (lambda r: r.counter("c", labels="route"), TypeError,
         "labels: expected a list of label names, got str 'route'"),
        (lambda r: r.counter("c", labels=[1]), TypeError,
         "labels: expected label names as str, got int 1"),
        (lambda r: r.counter("c", labels=["a-b"]), ValueError,
         "labels: expected label names matching [a-zA-Z_][a-zA-Z0-9_.]*, got 'a-b'"),
        (lambda r: r.counter("c", labels=["__x"]), ValueError,
         "labels: names starting with '__' are reserved, got '__x'"),
        (lambda r: r.counter("c", labels=["a", "a"]), ValueError, "labels: 'a' is repeated"),
        (lambda r: r.counter("c", labels=["a.b", "a_b"]), ValueError,
         "labels: 'a.b' and 'a_b' are the same label in the exposition ('a_b')"),
        (lambda r: r.histogram("h", labels=["le"]), ValueError,
         "labels: 'le' is reserved by histogram metrics"),
        (lambda r: r.summary("s", labels=["quantile"]), ValueError,
         "labels: 'quantile' is reserved by summary metrics"),
        (lambda r: r.enum("e", states=["a"], labels=["e"]), ValueError,
         "labels: 'e' is reserved by enum metrics"),
        (lambda r: r.counter("c", description=1), TypeError,
         "description: expected a str, got int 1"),
        (lambda r: r.counter("c", unit=None), TypeError, "unit: expected a str, got NoneType None"),
    ],
)  # fmt: skip
def test_invalid_declarations_raise_naming_the_argument(
    reg: MetricsRegistry, declare: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=exactly(message)):
        declare(reg)


@pytest.mark.parametrize(
    ("buckets", "error", "message"),
    [
        ([], ValueError, "buckets: expected at least one finite bound, got none"),
        ([float("inf")], ValueError, "buckets: expected at least one finite bound, got none"),
        ([1, 3, 2], ValueError, "buckets: bounds must be strictly increasing, got 3.0 then 2.0"),
        ([1, 1], ValueError, "buckets: bounds must be strictly increasing, got 1.0 then 1.0"),
        ([float("nan")], ValueError,
         "buckets: bounds must be finite numbers (the +Inf bucket is implied), got nan"),
        ([float("-inf"), 1], ValueError,
         "buckets: bounds must be finite numbers (the +Inf bucket is implied), got -inf"),
        (["1"], TypeError, "buckets: expected a number, got str '1'"),
        (5, TypeError, "buckets: expected a list of numbers, got int 5"),
    ],
)  # fmt: skip
def test_histogram_buckets_must_be_sorted_finite_and_non_empty(
    reg: MetricsRegistry, buckets: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=exactly(message)):
        reg.histogram("h", buckets=buckets)


@pytest.mark.parametrize(
    ("name", "states", "error", "message"),
    [
        ("e", [], ValueError, "states: expected at least one state, got none"),
        ("e", ["a", "a"], ValueError, "states: 'a' is repeated"),
        ("e", [1], TypeError, "states: expected state names as str, got int 1"),
        ("e", "ab", TypeError, "states: expected a list of state names, got str 'ab'"),
        ("ns:e", ["a"], ValueError,
         "name: an enum's name is also its state label, so it must be a valid label name "
         "([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__'), got 'ns:e'"),
    ],
)  # fmt: skip
def test_enum_declarations_are_checked(
    reg: MetricsRegistry, name: str, states: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=exactly(message)):
        reg.enum(name, states=states)


# ---------------------------------------------------------------------- update validation


@pytest.mark.parametrize(
    ("update", "error", "message"),
    [
        (lambda c: c.inc(-1), ValueError,
         "value: counter 'c' can only increase by a finite amount >= 0, got -1.0"),
        (lambda c: c.inc(float("nan")), ValueError,
         "value: counter 'c' can only increase by a finite amount >= 0, got nan"),
        (lambda c: c.inc(float("inf")), ValueError,
         "value: counter 'c' can only increase by a finite amount >= 0, got inf"),
        (lambda c: c.inc("1"), TypeError, "value: counter 'c' takes a number, got str '1'"),
        (lambda c: c.inc(True), TypeError, "value: counter 'c' takes a number, got bool True"),
        (lambda c: c.inc(Decimal(1)), TypeError,
         "value: counter 'c' takes a number, got Decimal Decimal('1')"),
        (lambda c: c.inc(10**400), ValueError,
         f"value: counter 'c' takes numbers a float can hold, got int {repr(10**400)[:57]}..."),
        (lambda c: c.labels().inc(-1), ValueError,
         "value: counter 'c' can only increase by a finite amount >= 0, got -1.0"),
    ],
)  # fmt: skip
def test_counter_increments_must_be_finite_non_negative_numbers(
    reg: MetricsRegistry, update: Any, error: type[Exception], message: str
) -> None:
    c = reg.counter("c")
    with pytest.raises(error, match=exactly(message)):
        update(c)
    assert by_name(reg)["c"].points[0].value == 0.0


def test_numbers_of_other_real_types_are_accepted(reg: MetricsRegistry) -> None:
    c = reg.counter("c")
    c.inc(Fraction(1, 2))
    c.inc(2**60)
    reg.histogram("h", buckets=[1]).observe(Fraction(1, 4))
    assert by_name(reg)["c"].points[0].value == 0.5 + 2**60
    assert by_name(reg)["h"].points[0].value == HistogramValue(1, 0.25, (1.0,), (1, 0))


def test_gauges_accept_any_number_including_nan_and_infinities(reg: MetricsRegistry) -> None:
    g = reg.gauge("g", labels=["k"])
    g.set(float("nan"), labels={"k": "nan"})
    g.set(float("-inf"), labels={"k": "-inf"})
    g.labels(k="int").set(7)
    got = values(reg, "g")
    assert got[(("k", "-inf"),)] == float("-inf")
    assert got[(("k", "int"),)] == 7.0
    assert got[(("k", "nan"),)] != got[(("k", "nan"),)]
    with pytest.raises(
        TypeError, match=exactly("value: gauge 'g' takes a number, got NoneType None")
    ):
        g.set(None, labels={"k": "x"})


@pytest.mark.parametrize("kind", ["histogram", "summary"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_observations_must_be_finite(reg: MetricsRegistry, kind: str, value: float) -> None:
    metric = getattr(reg, kind)("m")
    with pytest.raises(
        ValueError, match=exactly(f"value: {kind} 'm' takes finite observations, got {value!r}")
    ):
        metric.observe(value)
    with pytest.raises(ValueError, match="takes finite observations"):
        metric.labels().observe(value)


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (None, ValueError, "labels: counter 'c' declares labels ['route', 'code']; missing ['route', 'code']"),  # noqa: E501
        ({"route": "/"}, ValueError, "labels: counter 'c' declares labels ['route', 'code']; missing ['code']"),  # noqa: E501
        ({"route": "/", "code": "200", "x": "1"}, ValueError,
         "labels: counter 'c' declares labels ['route', 'code']; undeclared ['x']"),
        ({"route": "/", "kode": "200"}, ValueError,
         "labels: counter 'c' declares labels ['route', 'code']; missing ['code'] and undeclared ['kode']"),  # noqa: E501
        ({"route": "/", "code": 2.5}, TypeError,
         "labels: the value of 'code' must be a str or an int, got float 2.5"),
        ({"route": None, "code": "1"}, TypeError,
         "labels: the value of 'route' must be a str or an int, got NoneType None"),
        ({"route": ["/"], "code": "1"}, TypeError,
         "labels: the value of 'route' must be a str or an int, got list ['/']"),
        ([("route", "/"), ("code", "1")], TypeError,
         "labels: expected a mapping of label name to value, got list [('route', '/'), ('code', '1')]"),  # noqa: E501
    ],
)  # fmt: skip
def test_labels_must_be_exactly_the_declared_ones_with_str_values(
    reg: MetricsRegistry, labels: Any, error: type[Exception], message: str
) -> None:
    c = reg.counter("c", labels=["route", "code"])
    with pytest.raises(error, match=exactly(message)):
        c.inc(labels=labels)
    with pytest.raises(error, match=exactly(message)):
        c.labels(**labels) if isinstance(labels, dict) else c.inc(labels=labels)
    assert reg.snapshot(NOW) == []


def test_labels_given_to_an_unlabelled_metric_are_undeclared(reg: MetricsRegistry) -> None:
    with pytest.raises(
        ValueError, match=exactly("labels: histogram 'h' declares labels []; undeclared ['a']")
    ):
        reg.histogram("h").observe(1, labels={"a": "b"})


def test_int_and_bool_label_values_are_written_with_str(reg: MetricsRegistry) -> None:
    c = reg.counter("c", labels=["code", "ok"])
    c.inc(labels={"code": 200, "ok": True})
    c.inc(labels={"code": "200", "ok": "True"})
    assert values(reg, "c") == {(("code", "200"), ("ok", "True")): 2.0}


def test_labels_by_position_follow_the_declared_order(reg: MetricsRegistry) -> None:
    c = reg.counter("c", labels=["a", "b"])
    assert c.labels("1", "2") is c.labels(b="2", a="1")
    with pytest.raises(
        ValueError, match=exactly("labels: counter 'c' declares labels ['a', 'b'], got 1 value(s)")
    ):
        c.labels("1")
    with pytest.raises(
        TypeError, match=exactly("labels: pass label values by position or by name, not both")
    ):
        c.labels("1", b="2")


def test_enum_and_info_updates_are_checked(reg: MetricsRegistry) -> None:
    e = reg.enum("e", states=["a", "b"], labels=["k"])
    with pytest.raises(ValueError, match=exactly("state: enum 'e' has states ['a', 'b'], got 'c'")):
        e.state("c", labels={"k": "1"})
    with pytest.raises(TypeError, match=exactly("state: expected a str, got int 1")):
        e.state(1, labels={"k": "1"})  # type: ignore[arg-type]
    i = reg.info("i", labels=["k"])
    with pytest.raises(ValueError, match=exactly("values: 'k' is a label of info 'i'")):
        i.info({"k": "x"}, labels={"k": "1"})
    with pytest.raises(
        ValueError,
        match=exactly(
            "values: info names must match [a-zA-Z_][a-zA-Z0-9_.]* and not start with '__', "
            "got 'bad-name'"
        ),
    ):
        i.info({"bad-name": "x"}, labels={"k": "1"})
    with pytest.raises(
        TypeError, match=exactly("values: expected a mapping of name to value, got list ['x']")
    ):
        i.info(["x"], labels={"k": "1"})  # type: ignore[arg-type]
    assert reg.snapshot(NOW) == []


# ---------------------------------------------------------------------- pontem's shortcuts


def test_shortcuts_declare_at_first_use_with_their_label_names(reg: MetricsRegistry) -> None:
    reg.count("frames")
    reg.count("frames", 2)
    reg.count("requests", route="/a", ok="true")
    reg.count("requests", 3, ok="true", route="/a")
    reg.record("payload", 512, unit="By")
    reg.set_gauge("temperature", 72.0, unit="Cel", gpu="0")
    reg.set_gauge("temperature", 71.5, unit="Cel", gpu="0")
    snap = by_name(reg)
    assert [(r.name, r.type, r.unit) for r in snap.values()] == [
        ("frames", "counter", ""),
        ("requests", "counter", ""),
        ("payload", "histogram", "By"),
        ("temperature", "gauge", "Cel"),
    ]
    assert values(reg, "frames") == {(): 3.0}
    assert values(reg, "requests") == {(("ok", "true"), ("route", "/a")): 4.0}
    assert values(reg, "payload") == {
        (): HistogramValue(1, 512.0, RECORD_BUCKETS, (0,) * 9 + (1,) * 1 + (0,) * 6)
    }
    assert values(reg, "temperature") == {(("gpu", "0"),): 71.5}


def test_shortcut_names_and_values_are_positional_so_any_label_name_works(
    reg: MetricsRegistry,
) -> None:
    reg.count("jobs", 2, name="import", value="x", unit="1")
    assert values(reg, "jobs") == {(("name", "import"), ("value", "x")): 2.0}


def test_shortcuts_refuse_conflicts_with_what_is_declared(reg: MetricsRegistry) -> None:
    reg.count("requests", route="/a")
    with pytest.raises(
        ValueError,
        match=exactly(
            "labels: counter 'requests' declares labels ['route']; missing ['route'] and "
            "undeclared ['method']"
        ),
    ):
        reg.count("requests", method="GET")
    with pytest.raises(ValueError, match=exactly("name: 'requests' is a counter, not a gauge")):
        reg.set_gauge("requests", 1)
    reg.record("latency", 1.0, unit="ms")
    with pytest.raises(
        ValueError, match=exactly("unit: histogram 'latency' was declared with unit 'ms', got 's'")
    ):
        reg.record("latency", 1.0, unit="s")
    reg.record("latency", 2.0)  # no unit given: the declared one applies
    message = "value: counter 'frames' can only increase by a finite amount >= 0, got -1.0"
    with pytest.raises(ValueError, match=exactly(message)):
        reg.count("frames", -1)


def test_shortcuts_use_metrics_declared_explicitly(reg: MetricsRegistry) -> None:
    sent = reg.counter("bytes_sent", "Bytes sent", unit="By")
    reg.count("bytes_sent", 100)
    reg.count("bytes_sent", 20, unit="By")
    reg.record("size", 3, boundaries=[1, 5])
    reg.record("size", 9, boundaries=[100])  # like pontem: bounds of the first call stay
    assert sent.labels().start_time > 0
    assert values(reg, "bytes_sent") == {(): 120.0}
    assert values(reg, "size") == {(): HistogramValue(2, 12.0, (1.0, 5.0), (0, 1, 1))}


def test_the_module_functions_use_the_default_registry(default_registry: MetricsRegistry) -> None:
    metrics.count("frames")
    metrics.record("size", 512, unit="By")
    metrics.set_gauge("queue_depth", 3)
    metrics.counter("requests", labels=["route"]).inc(labels={"route": "/a"})
    metrics.gauge("g").set(1)
    metrics.histogram("h", buckets=[1]).observe(2)
    metrics.summary("s").observe(1)
    metrics.info("i").info({"v": "1"})
    metrics.enum("e", states=["x"]).state("x")
    with metrics.timer("t"):
        pass
    assert metrics.registry() is default_registry
    assert [r.name for r in default_registry.snapshot(NOW)] == [
        "frames", "size", "queue_depth", "requests", "g", "h", "s", "i", "e", "t",
    ]  # fmt: skip
    assert "frames_total 1.0" in metrics.exposition()
    assert "frames_total 1.0" in metrics.exposition("text")


def test_the_metrics_module_all_lists_every_public_name() -> None:
    public = {n for n in vars(metrics) if not n.startswith("_")} - {"annotations"}
    assert set(metrics.__all__) == public


# ---------------------------------------------------------------------- the timer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """perf_counter_ns of the timer: each call returns the next value of this list."""
    ticks: list[int] = []
    monkeypatch.setattr(_timer, "perf_counter_ns", lambda: ticks.pop(0))
    return ticks


def test_timer_as_with_block_observes_milliseconds(reg: MetricsRegistry, clock: list[int]) -> None:
    clock.extend([1_000_000, 3_500_000])
    with reg.timer("infer", model="v3") as t:
        assert isinstance(t, metrics.Timer)
    h = by_name(reg)["infer"]
    assert (h.type, h.unit) == ("histogram", "ms")
    assert values(reg, "infer") == {
        (("model", "v3"),): HistogramValue(1, 2.5, RECORD_BUCKETS, (0, 1) + (0,) * 14)
    }


def test_timer_times_a_block_that_raises(reg: MetricsRegistry, clock: list[int]) -> None:
    clock.extend([0, 2_000_000_000])
    with pytest.raises(KeyError), reg.timer("infer", unit="s"):
        raise KeyError("boom")
    point = by_name(reg)["infer"].points[0].value
    assert isinstance(point, HistogramValue)
    assert (point.count, point.sum, point.bounds[:3]) == (1, 2.0, (0.0, 0.005, 0.01))


@pytest.mark.asyncio
async def test_timer_as_async_with(reg: MetricsRegistry, clock: list[int]) -> None:
    clock.extend([10, 10 + 4_000])
    async with reg.timer("io", unit="us"):
        await asyncio.sleep(0)
    point = by_name(reg)["io"].points[0].value
    assert isinstance(point, HistogramValue)
    assert (point.count, point.sum) == (1, 4.0)


def test_timer_decorates_plain_functions_keeping_their_identity(
    reg: MetricsRegistry, clock: list[int]
) -> None:
    @reg.timer("work", unit="ns")
    def work(x: int, *, y: int = 1) -> int:
        """Does work."""
        return x + y

    clock.extend([0, 7, 100, 105])
    assert work(1, y=2) == 3
    assert work(2) == 3
    assert (work.__name__, work.__doc__) == ("work", "Does work.")
    assert str(inspect.signature(work)) == "(x: 'int', *, y: 'int' = 1) -> 'int'"
    assert not inspect.iscoroutinefunction(work)
    point = by_name(reg)["work"].points[0].value
    assert isinstance(point, HistogramValue)
    assert (point.count, point.sum) == (2, 12.0)


@pytest.mark.asyncio
async def test_timer_decorates_coroutine_functions(reg: MetricsRegistry, clock: list[int]) -> None:
    @reg.timer("fetch")
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        if url == "bad":
            raise ValueError(url)
        return url.upper()

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert isinstance(fetch, functools.partial) is False
    clock.extend([0, 1_000_000, 0, 3_000_000])
    assert await fetch("a") == "A"
    with pytest.raises(ValueError, match="bad"):
        await fetch("bad")
    point = by_name(reg)["fetch"].points[0].value
    assert isinstance(point, HistogramValue)
    assert (point.count, point.sum) == (2, 4.0)


def test_timer_checks_its_arguments_where_it_is_created(reg: MetricsRegistry) -> None:
    with pytest.raises(
        ValueError, match=exactly("unit: a timer measures in ns, us, ms or s, got 'h'")
    ):
        reg.timer("t", unit="h")
    reg.timer("t2", route="/")
    with pytest.raises(ValueError, match=r"^labels: histogram 't2' declares labels \['route'\]"):
        reg.timer("t2")


def test_real_timers_measure_something_non_negative(reg: MetricsRegistry) -> None:
    with reg.timer("real"):
        pass
    point = by_name(reg)["real"].points[0].value
    assert isinstance(point, HistogramValue)
    assert point.count == 1
    assert point.sum >= 0


# ---------------------------------------------------------------------- caps


def test_default_caps_match_the_metrics_settings_defaults() -> None:
    settings = MetricsSettings()
    assert (settings.name_limit, settings.label_sets_limit) == (NAME_LIMIT, LABEL_SETS_LIMIT)


def test_label_sets_beyond_the_cap_are_dropped_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = MetricsRegistry(label_sets_limit=2)
    c = reg.counter("c", labels=["user"])
    with caplog.at_level(logging.WARNING, logger="pontem_async"):
        for user in ("a", "b", "c", "d", "a", "c"):
            c.inc(labels={"user": user})
        extra = c.labels(user="e")
        extra.inc(5)
        reg.count("shortcut", user="x")
    assert values(reg, "c") == {(("user", "a"),): 2.0, (("user", "b"),): 1.0}
    assert reg.stats() == {
        "metrics": 2,
        "series": 3,
        "name_limit": 1000,
        "label_sets_limit": 2,
        "dropped": {"label_sets_limit": 4},
        "dropped_by_metric": {"c": {"label_sets_limit": 4}},
    }
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "pontem-async metrics: counter 'c' reached label_sets_limit (2); updates with new "
        "label sets are dropped (counted in pontem.dropped_records)"
    ]
    with pytest.raises(ValueError, match="finite amount"):
        extra.inc(-1)  # a dropped child still checks its arguments
    dropped = by_name(reg)["pontem.dropped_records"]
    assert dropped.points == (
        MetricPoint(
            {"handler": "pontem.metrics", "reason": "label_sets_limit"},
            dropped.points[0].start_time,
            4.0,
        ),
    )


def test_names_beyond_the_cap_are_dropped_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = MetricsRegistry(name_limit=2)
    reg.count("a")
    reg.gauge("b").set(1)
    with caplog.at_level(logging.WARNING, logger="pontem_async"):
        late = reg.counter("late", labels=["k"])
        late.inc(labels={"k": "1"})
        late.labels(k="2").inc()
        reg.count("shortcut")
        reg.count("shortcut", 2)
        reg.histogram("h").observe(1)
        reg.enum("e", states=["x"]).state("x")
        reg.info("i").info({"v": "1"})
        reg.summary("s").labels().observe(1)
        reg.gauge("g").labels().inc()
    assert [r.name for r in reg.snapshot(NOW)] == ["a", "b", "pontem.dropped_records"]
    stats = reg.stats()
    assert (stats["metrics"], stats["dropped"]) == (2, {"name_limit": 9})
    assert stats["dropped_by_metric"] == {
        "late": {"name_limit": 2},
        "shortcut": {"name_limit": 2},
        "h": {"name_limit": 1},
        "e": {"name_limit": 1},
        "i": {"name_limit": 1},
        "s": {"name_limit": 1},
        "g": {"name_limit": 1},
    }
    names = ["late", "shortcut", "h", "e", "i", "s", "g"]
    assert [r.getMessage() for r in caplog.records] == [
        f"pontem-async metrics: name_limit (2) reached; updates of the new metric {n!r} are "
        "dropped (counted in pontem.dropped_records)"
        for n in names
    ]
    assert "not registered: name_limit" in repr(late)


def test_caps_are_configurable_and_never_evict(reg: MetricsRegistry) -> None:
    c = reg.counter("c", labels=["k"])
    for k in "abc":
        c.inc(labels={"k": k})
    reg.configure(name_limit=1, label_sets_limit=1)
    c.inc(labels={"k": "a"})
    c.inc(labels={"k": "z"})
    reg.counter("other").inc()
    assert values(reg, "c") == {(("k", "a"),): 2.0, (("k", "b"),): 1.0, (("k", "c"),): 1.0}
    assert reg.stats()["dropped"] == {"label_sets_limit": 1, "name_limit": 1}
    with pytest.raises(ValueError, match=r"^metrics\.name_limit: expected a positive integer"):
        reg.configure(name_limit=0, label_sets_limit=1)


def test_remove_and_clear_forget_metrics(reg: MetricsRegistry) -> None:
    c = reg.counter("c")
    by_user = reg.counter("by_user", labels=["user"])
    by_user.inc(labels={"user": "a"})
    reg.count("d")
    assert reg.remove("c") is True
    assert reg.remove("c") is False
    assert reg.remove("by_user") is True
    c.inc()  # existing series keep working, no longer exported
    by_user.inc(labels={"user": "a"})
    by_user.inc(labels={"user": "new"})  # a new series of a removed metric is refused
    reg.gauge("c").set(1)  # the name is free again
    assert [r.name for r in reg.snapshot(NOW)] == ["d", "c", "pontem.dropped_records"]
    assert reg.stats()["dropped_by_metric"] == {"by_user": {"removed": 1}}
    assert "not registered: removed" in repr(by_user)
    assert (by_user.registered, reg.get("d").registered) == (False, True)  # type: ignore[union-attr]
    reg.clear()
    assert (reg.snapshot(NOW), len(reg), reg.stats()["dropped"]) == ([], 0, {})


# ---------------------------------------------------------------------- threads and time


def test_updates_from_eight_threads_add_up_exactly(reg: MetricsRegistry) -> None:
    c = reg.counter("c", labels=["k"])
    child = c.labels(k="child")
    h = reg.histogram("h", buckets=[0.5])
    g = reg.gauge("g")
    s = reg.summary("s")
    n, threads = 20_000, 8
    start = threading.Barrier(threads)

    def hammer(index: int) -> None:
        start.wait()
        for i in range(n):
            c.inc(labels={"k": "shared"})
            child.inc(2)
            reg.count("shortcut")
            reg.count("by_thread", worker=str(index % 2))
            h.observe(i % 2)
            g.inc()
            s.observe(1)

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = n * threads
    assert values(reg, "c") == {(("k", "child"),): 2.0 * total, (("k", "shared"),): total}
    assert values(reg, "shortcut") == {(): total}
    half = total / 2
    assert values(reg, "by_thread") == {(("worker", "0"),): half, (("worker", "1"),): half}
    assert values(reg, "h") == {(): HistogramValue(total, total / 2, (0.5,), (total // 2,) * 2)}
    assert values(reg, "g") == {(): total}
    assert values(reg, "s") == {(): SummaryValue(total, total)}


def test_start_times_are_stable_and_values_cumulative(reg: MetricsRegistry) -> None:
    c = reg.counter("c", labels=["k"])
    g = reg.gauge("g")
    c.inc(labels={"k": "a"})
    g.set(5)
    first = reg.snapshot(NOW)
    c.inc(2, labels={"k": "a"})
    second = reg.snapshot(NOW + 1)
    assert [p.start_time for r in first for p in r.points] == [
        p.start_time for r in second for p in r.points
    ]
    assert [(r.timestamp, [p.value for p in r.points]) for r in second] == [
        (NOW + 1, [3.0]),
        (NOW + 1, [5.0]),
    ]
    assert reg.snapshot()[0].timestamp > NOW
