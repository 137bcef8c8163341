"""``@profile``: every kind of callable and placement, errors and the error_raised label, the
time and response-size metrics, hooks, handle_records, names and attributes, settings changes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from pontem_async import Telemetry
from pontem_async._calltree import current_node, current_span_ids
from pontem_async._config_schema import ProfilerSettings
from pontem_async.profiler import RESPONSE_SIZE, TIME_PROFILER, Profiler
from pontem_async.records import CallNode, HistogramValue, ProfileRecord, Record
from pontem_async.testing import capture

TEL = Telemetry("svc", handlers=[], install_signal_handlers=False)
PROF = Profiler(TEL)
MODULE = "test_profiler"


def profiles(records: list[Record]) -> list[ProfileRecord]:
    return [r for r in records if isinstance(r, ProfileRecord)]


def shape(node: CallNode) -> tuple[str, list[Any]]:
    return node.name, [shape(child) for child in node.children]


def series(tel: Telemetry, name: str) -> dict[tuple[tuple[str, str], ...], HistogramValue]:
    """The histogram ``name``'s series: sorted label pairs -> value."""
    out = {}
    for record in tel.metrics.snapshot():
        if record.name == name:
            for point in record.points:
                assert isinstance(point.value, HistogramValue)
                out[tuple(sorted(point.labels.items()))] = point.value
    return out


def counts(tel: Telemetry, name: str = TIME_PROFILER) -> dict[tuple[tuple[str, str], ...], int]:
    return {labels: value.count for labels, value in series(tel, name).items()}


# ---------------------------------------------------------------------- the placement matrix

KINDS = ("function", "coroutine", "async_generator", "generator")
PLACEMENTS = (
    "module_function",
    "method",
    "staticmethod_below",
    "staticmethod_above",
    "classmethod_below",
    "classmethod_above",
)
FORMS = ("bare", "with_args")
CASES = list(itertools.product(KINDS, PLACEMENTS, FORMS))


def _raw(kind: str, first: str | None) -> Callable[..., Any]:
    """An undecorated callable of ``kind``: doubles ``x`` (generators yield it twice)."""
    if kind == "function":

        def target(*args: Any) -> Any:
            """Doubles x."""
            return args[-1] * 2

    elif kind == "coroutine":

        async def target(*args: Any) -> Any:  # type: ignore[misc]
            """Doubles x."""
            await asyncio.sleep(0)
            return args[-1] * 2

    elif kind == "async_generator":

        async def target(*args: Any) -> Any:  # type: ignore[misc]
            """Doubles x."""
            for _ in range(2):
                await asyncio.sleep(0)
                yield args[-1] * 2

    else:

        def target(*args: Any) -> Any:  # type: ignore[misc]
            """Doubles x."""
            for _ in range(2):
                yield args[-1] * 2

    return target


def _build(kind: str, placement: str, form: str) -> tuple[Any, str, Callable[..., Any]]:
    """(the object to call ``target`` on, the expected owner, the raw function)."""
    owner_name = f"Holder_{kind}_{placement}_{form}"
    raw = _raw(kind, None)
    raw.__qualname__ = (
        f"{owner_name}.target" if placement != "module_function" else f"target_{owner_name}"
    )
    decorate: Any = PROF.profile if form == "bare" else PROF.profile(attributes={"form": form})
    if placement == "module_function":
        wrapped = decorate(raw)
        holder = type(owner_name, (), {"target": staticmethod(wrapped)})
        globals()[raw.__qualname__] = wrapped
        return holder, MODULE, raw
    if placement == "method":
        member = decorate(raw)
    elif placement == "staticmethod_below":
        member = staticmethod(decorate(raw))
    elif placement == "staticmethod_above":
        member = decorate(staticmethod(raw))
    elif placement == "classmethod_below":
        member = classmethod(decorate(raw))
    else:
        member = decorate(classmethod(raw))
    holder = type(owner_name, (), {"target": member, "__module__": __name__})
    globals()[owner_name] = holder
    return (holder() if placement == "method" else holder), owner_name, raw


@pytest.mark.parametrize(("kind", "placement", "form"), CASES)
@pytest.mark.asyncio
async def test_every_kind_and_placement_keeps_metadata_results_and_method_paths(
    kind: str, placement: str, form: str
) -> None:
    on, owner, raw = _build(kind, placement, form)
    target = on.target
    assert target.__name__ == "target"
    assert target.__doc__ == "Doubles x."
    assert target.__qualname__ == raw.__qualname__
    assert inspect.unwrap(target) is raw
    assert inspect.iscoroutinefunction(target) is (kind == "coroutine")
    assert inspect.isasyncgenfunction(target) is (kind == "async_generator")
    assert inspect.isgeneratorfunction(target) is (kind == "generator")

    with capture(TEL) as cap:
        if kind == "coroutine":
            result = await target(21)
        elif kind == "async_generator":
            result = [item async for item in target(21)]
        elif kind == "generator":
            result = list(target(21))
        else:
            result = target(21)
    assert result == (42 if kind in ("function", "coroutine") else [42, 42])
    (record,) = profiles(cap.records)
    assert record.root.name == f"{owner}:target"
    assert record.root.attributes == ({} if form == "bare" else {"form": form})
    assert record.root.error is None
    assert current_node() is None


def test_the_decorator_refuses_what_it_cannot_profile() -> None:
    with pytest.raises(TypeError, match="profile: expected a function or method, got int"):
        PROF.profile(42)
    with pytest.raises(TypeError, match="name: expected a non-empty str"):
        PROF.profile(name="")
    with pytest.raises(TypeError, match="attributes: expected a dict"):
        PROF.profile(attributes=[("a", 1)])  # type: ignore[arg-type]


class Repo:
    @PROF.profile
    def get(self) -> int:
        return self.load() + Repo.build()

    @PROF.profile(name="fetch")
    def load(self) -> int:
        return 1

    @staticmethod
    @PROF.profile(name="Factory:make")
    def build() -> int:
        return 2


def test_names_follow_phanos_paths_and_name_overrides() -> None:
    with capture(TEL) as cap:
        assert Repo().get() == 3
        Repo.build()
    first, second = profiles(cap.records)
    assert shape(first.root) == ("Repo:get", [("Repo:get.fetch", []), ("Repo:get.make", [])])
    assert shape(second.root) == ("Factory:make", [])


# ---------------------------------------------------------------------- errors and metrics


@pytest.fixture
def tel() -> Telemetry:
    return Telemetry("svc", handlers=[], install_signal_handlers=False)


def test_error_raised_is_true_only_when_the_call_raised_through(tel: Telemetry) -> None:
    prof = Profiler(tel)

    @prof.profile
    def fails(n: int) -> None:
        raise ValueError(f"bad {n}")

    @prof.profile
    def handles(n: int) -> str:
        try:
            fails(n)
        except ValueError:
            return "handled"
        raise AssertionError("unreachable")

    with capture(tel) as cap:
        assert handles(42) == "handled"
        with pytest.raises(ValueError, match="bad 7"):
            fails(7)
    handled, raised = profiles(cap.records)
    assert handled.root.error is None
    (inner,) = handled.root.children
    assert raised.root.error is not None
    assert inner.error is not None
    for error, message in ((inner.error, "bad 42"), (raised.root.error, "bad 7")):
        assert error["type"] == "ValueError"
        assert error["message"] == message
        assert re.fullmatch(r"[0-9a-f]{40}", error["fingerprint"])
    assert counts(tel) == {
        (("error_raised", "False"), ("method", f"{MODULE}:handles")): 1,
        (("error_raised", "True"), ("method", f"{MODULE}:handles.fails")): 1,
        (("error_raised", "True"), ("method", f"{MODULE}:fails")): 1,
    }


def test_without_error_raised_label_only_the_method_labels_the_series() -> None:
    tel = Telemetry(
        "svc",
        handlers=[],
        install_signal_handlers=False,
        profiler=ProfilerSettings(error_raised_label=False),
    )
    prof = Profiler(tel)

    @prof.profile
    def fails() -> None:
        raise KeyError("k")

    with capture(tel), pytest.raises(KeyError):
        fails()
    assert counts(tel) == {(("method", f"{MODULE}:fails"),): 1}


def test_time_profiler_observes_milliseconds_per_method_path(tel: Telemetry) -> None:
    prof = Profiler(tel)

    @prof.profile
    def work() -> None:
        pass

    with capture(tel) as cap:
        for _ in range(3):
            work()
    durations = [r.root.duration_ns for r in profiles(cap.records)]
    ((labels, value),) = series(tel, TIME_PROFILER).items()
    assert labels == (("error_raised", "False"), ("method", f"{MODULE}:work"))
    assert value.count == 3
    assert value.sum == pytest.approx(sum(d or 0 for d in durations) / 1e6)
    metric = tel.metrics.get(TIME_PROFILER)
    assert metric is not None
    assert metric.unit == ""
    assert "time_profiler_bucket{" in tel.metrics.exposition("text")


def test_settings_changes_apply_after_the_next_root(tel: Telemetry) -> None:
    prof = Profiler(tel)

    @prof.profile
    def work() -> bytes:
        return b"1234"

    with capture(tel):
        work()
        tel.configure(
            "svc",
            handlers=[],
            start=False,
            install_signal_handlers=False,
            profiler=ProfilerSettings(error_raised_label=False, response_size_profile=True),
        )
        work()  # still the old state; its end notices the change
        work()
    assert counts(tel) == {(("method", f"{MODULE}:work"),): 1}
    assert counts(tel, RESPONSE_SIZE) == {(("method", f"{MODULE}:work"),): 1}


class _Body:
    def __init__(self, size: int) -> None:
        self.size = size


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (b"abc", 3),
        (bytearray(b"abcd"), 4),
        ("h\u00e9", 3),
        ({"a": [1, 2]}, len(b'{"a":[1,2]}')),
        ([1, 2, 3], len(b"[1,2,3]")),
        (web.Response(text="hello"), 5),
        (web.json_response({"ok": True}), len(b'{"ok": true}')),
        (None, None),
        (object(), None),
        (_Body(7), None),
    ],
)
def test_response_size_counts_the_bytes_of_what_a_root_returns(
    value: Any, size: int | None
) -> None:
    tel = Telemetry(
        "svc",
        handlers=[],
        install_signal_handlers=False,
        profiler=ProfilerSettings(response_size_profile=True),
    )
    prof = Profiler(tel)

    @prof.profile
    def respond() -> Any:
        return value

    with capture(tel):
        assert respond() is value
    observed = series(tel, RESPONSE_SIZE)
    if size is None:
        assert observed == {}
    else:
        ((labels, hist),) = observed.items()
        assert labels == (("error_raised", "False"), ("method", f"{MODULE}:respond"))
        assert (hist.count, hist.sum) == (1, size)


def test_response_size_is_off_by_default_and_skips_children_and_errors(tel: Telemetry) -> None:
    prof = Profiler(tel)

    @prof.profile
    def respond() -> bytes:
        return b"x"

    with capture(tel):
        respond()
    assert tel.metrics.get(RESPONSE_SIZE) is None

    tel2 = Telemetry(
        "svc",
        handlers=[],
        install_signal_handlers=False,
        profiler=ProfilerSettings(response_size_profile=True),
    )
    prof2 = Profiler(tel2)

    @prof2.profile
    def child() -> bytes:
        return b"child"

    @prof2.profile
    def root(fail: bool) -> bytes:
        child()
        if fail:
            raise RuntimeError("no response")
        return b"root"

    with capture(tel2):
        root(False)
        with pytest.raises(RuntimeError):
            root(True)
    assert {k: v.sum for k, v in series(tel2, RESPONSE_SIZE).items()} == {
        (("error_raised", "False"), ("method", f"{MODULE}:root")): 4
    }


# ---------------------------------------------------------------------- hooks and switches


def test_hooks_get_phanos_arguments_in_phanos_order(tel: Telemetry) -> None:
    prof = Profiler(tel)
    calls: list[tuple[Any, ...]] = []
    prof.before_root_func = lambda f, a, k: calls.append(("before_root", f.__name__, a, k))
    prof.before_func = lambda f, a, k: calls.append(("before", f.__name__, a, k))
    prof.after_func = lambda r, a, k: calls.append(("after", r, a, k))
    prof.after_root_func = lambda r, a, k: calls.append(("after_root", r, a, k))

    @prof.profile
    def child(x: int) -> int:
        return x + 1

    @prof.profile
    def root(x: int, *, y: int) -> int:
        return child(x) * y

    @prof.profile
    def fails() -> None:
        raise ValueError("v")

    with capture(tel):
        assert root(1, y=3) == 6
        with pytest.raises(ValueError, match="v"):
            fails()
    assert calls == [
        ("before_root", "root", (1,), {"y": 3}),
        ("before", "root", (1,), {"y": 3}),
        ("before", "child", (1,), {}),
        ("after", 2, (1,), {}),
        ("after", 6, (1,), {"y": 3}),
        ("after_root", 6, (1,), {"y": 3}),
        ("before_root", "fails", (), {}),
        ("before", "fails", (), {}),
        ("after", None, (), {}),
        ("after_root", None, (), {}),
    ]
    with pytest.raises(TypeError, match="before_func: expected a callable or None"):
        prof.before_func = 3  # type: ignore[assignment]


def test_a_raising_hook_is_logged_once_and_counted(
    tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    prof = Profiler(tel)

    def broken(func: Any, args: Any, kwargs: Any) -> None:
        raise RuntimeError("hook bug")

    prof.before_func = broken

    @prof.profile
    def work() -> str:
        return "done"

    with capture(tel) as cap:
        assert [work() for _ in range(3)] == ["done"] * 3
    assert len(profiles(cap.records)) == 3
    assert prof.hook_errors == {"before_func": 3}
    messages = [r.getMessage() for r in caplog.records if "hook" in r.getMessage()]
    assert messages == ["pontem-async profiler hook before_func raised RuntimeError: hook bug "
                        "(ignored; logged once)"]  # fmt: skip


@pytest.mark.asyncio
async def test_handle_records_false_makes_decorators_pass_through(tel: Telemetry) -> None:
    prof = Profiler(tel)
    prof.handle_records = False

    @prof.profile
    async def work() -> tuple[str, str] | None:
        return current_span_ids()

    @prof.profile
    async def agen() -> AsyncIterator[tuple[str, str] | None]:
        yield current_span_ids()

    with capture(tel) as cap:
        assert await work() is None
        assert [x async for x in agen()] == [None]
    assert cap.records == []
    assert counts(tel) == {}
    prof.handle_records = True
    with capture(tel) as cap:
        assert await work() is not None
    assert len(profiles(cap.records)) == 1


# ---------------------------------------------------------------------- generators


@pytest.mark.asyncio
async def test_an_async_generator_node_spans_the_iteration_and_keeps_the_consumer_context(
    tel: Telemetry,
) -> None:
    prof = Profiler(tel)

    @prof.profile
    async def inner(i: int) -> int:
        return i

    @prof.profile
    async def between(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    @prof.profile
    async def produce() -> AsyncIterator[int]:
        for i in range(3):
            yield await inner(i)

    @prof.profile
    async def consume() -> list[int]:
        mine = current_span_ids()
        out = []
        async for i in produce():
            assert current_span_ids() == mine  # the generator's node is not current here
            out.append(await between(i))
        return out

    with capture(tel) as cap:
        assert await consume() == [0, 1, 2]
    (record,) = profiles(cap.records)
    path = f"{MODULE}:consume"
    assert shape(record.root) == (
        path,
        [(f"{path}.produce", [(f"{path}.produce.inner", [])] * 3)] + [(f"{path}.between", [])] * 3,
    )
    produce_node, *betweens = record.root.children
    last = betweens[-1]
    assert produce_node.start_unix_nano < last.start_unix_nano
    assert produce_node.duration_ns is not None
    assert last.duration_ns is not None
    produce_end = produce_node.start_unix_nano + produce_node.duration_ns
    assert produce_end >= last.start_unix_nano + last.duration_ns


@pytest.mark.asyncio
async def test_closing_or_throwing_into_a_profiled_async_generator(tel: Telemetry) -> None:
    prof = Profiler(tel)
    cleaned: list[str] = []

    @prof.profile
    async def numbers() -> AsyncIterator[int]:
        try:
            n = 0
            while True:
                got = yield n
                n = got if got is not None else n + 1
        except KeyError:
            yield -1
        finally:
            cleaned.append("done")

    with capture(tel) as cap:
        async with contextlib.aclosing(numbers()) as gen:
            assert await gen.__anext__() == 0
            assert await gen.asend(10) == 10
            assert await gen.athrow(KeyError("k")) == -1
        assert cleaned == ["done"]
        async for _ in numbers():
            break
        await asyncio.sleep(0)
    records = profiles(cap.records)
    assert [r.root.error for r in records] == [None]  # an early close is not an error
    assert current_node() is None


def test_a_generator_node_spans_its_iteration_and_records_errors(tel: Telemetry) -> None:
    prof = Profiler(tel)

    @prof.profile
    def leaf() -> int:
        return 1

    @prof.profile
    def gen(fail: bool) -> Iterator[int]:
        yield leaf()
        yield leaf()
        if fail:
            raise LookupError("gone")

    with capture(tel) as cap:
        assert list(gen(False)) == [1, 1]
        with pytest.raises(LookupError):
            list(gen(True))
        g = gen(False)
        next(g)
        g.close()
    ok, failed, closed = profiles(cap.records)
    assert shape(ok.root) == (f"{MODULE}:gen", [(f"{MODULE}:gen.leaf", [])] * 2)
    assert ok.root.error is None
    assert closed.root.error is None
    assert failed.root.error is not None
    assert failed.root.error["type"] == "LookupError"


@pytest.mark.asyncio
async def test_real_profile_lines_match_the_published_schema(tel: Telemetry) -> None:
    import json
    from importlib.resources import files

    import orjson
    from jsonschema import Draft202012Validator

    from pontem_async.encoding.jsonl import encode_line

    schema = json.loads(files("pontem_async").joinpath("schemas/profile.json").read_text("utf-8"))
    validator = Draft202012Validator(schema)
    prof = Profiler(tel)
    release = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    @prof.profile(attributes={"kind": "slow", "n": float("nan")})
    async def slow() -> None:
        await release.wait()

    @prof.profile
    async def fails() -> None:
        raise KeyError("missing 42")

    @prof.profile
    async def root() -> None:
        tasks.append(asyncio.create_task(slow()))
        await asyncio.sleep(0)
        with contextlib.suppress(KeyError):
            await fails()

    with capture(tel) as cap:
        await root()
    release.set()
    await tasks[0]
    (record,) = profiles(cap.records)
    line = orjson.loads(encode_line(record))
    errors = sorted(validator.iter_errors(line), key=str)
    assert errors == []
    assert line["unfinished"] == 1
    assert [c["attributes"] for c in line["root"]["children"]] == [
        {"kind": "slow", "n": "NaN", "unfinished": True},
        {},
    ]
    assert line["root"]["children"][1]["error"]["type"] == "KeyError"


class Outer:
    class Inner:
        def method(self) -> None:
            pass


def test_owners_are_found_as_phanos_finds_them() -> None:
    from pontem_async._calltree import owner_name

    def local() -> None:
        pass

    assert owner_name(counts) == MODULE  # a module-level function
    assert owner_name(Repo.load) == "Repo"  # a method, through its __qualname__
    assert owner_name(Repo().get) == "Repo"  # a bound method, through the class's MRO
    assert owner_name(local) == MODULE  # a local function: its module
    assert owner_name(Outer.Inner.method) == MODULE  # a nested class is not at module level
    assert owner_name(str.upper) == "str"  # a method descriptor's __objclass__
