"""phanos compatibility: its settings dicts (copied from its README and docstrings), its handler
classes, LoggerHandler's lines, add/delete of handlers and metrics, handle_records, and errors
named by key path."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pontem_async import ConfigError, Telemetry
from pontem_async._config_schema import ProfilerSettings
from pontem_async._phanos_handlers import phanos_lines
from pontem_async.handlers import StreamHandler
from pontem_async.profiler import (
    RESPONSE_SIZE,
    TIME_PROFILER,
    LoggerHandler,
    NamedLoggerHandler,
    Profiler,
)
from pontem_async.records import ProfileRecord
from pontem_async.testing import MemoryHandler, capture

# phanos' README, "Dict Configuration" (its class path really is phanos.handlers.StreamHandler)
README_SETTINGS = {
    "job": "my_app",
    "logger": "my_app_debug_logger",
    "time_profile": True,
    "response_size_profile": False,
    "handle_records": True,
    "error_raised_label": False,
    "handlers": {
        "stdout_handler_ref": {
            "class": "phanos.handlers.StreamHandler",
            "handler_name": "stdout_handler",
            "output": "ext://sys.stdout",
        }
    },
}
# phanos.publisher.Profiler.dict_config's docstring and phanos/config.py's example_config
DOCSTRING_SETTINGS = {
    "job": "my_app",
    "logger": "my_app_debug_logger",
    "time_profile": True,
    "request_size_profile": False,
    "handle_records": True,
    "error_raised_label": True,
    "handlers": {
        "stdout_handler": {
            "class": "phanos.publisher.StreamHandler",
            "handler_name": "stdout_handler",
            "output": "ext://sys.stdout",
        }
    },
}
# phanos 0.1's README
OLD_README_SETTINGS = {
    "job": "my_app",
    "logger": "my_app_debug_logger",
    "time_profile": True,
    "handle_records": True,
    "handlers": {
        "stdout_handler_ref": {
            "class": "phanos.publisher.StreamHandler",
            "handler_name": "stdout_handler",
            "output": "ext://sys.stdout",
        }
    },
}


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    telemetry = Telemetry(handlers=[], install_signal_handlers=False)  # no service name yet
    yield telemetry
    telemetry.shutdown_sync(timeout=5)


@pytest.fixture
def prof(tel: Telemetry) -> Profiler:
    return Profiler(tel)


@pytest.mark.parametrize(
    ("settings", "error_label"),
    [(README_SETTINGS, False), (DOCSTRING_SETTINGS, True), (OLD_README_SETTINGS, True)],
)
def test_phanos_documented_settings_are_accepted(
    tel: Telemetry, prof: Profiler, settings: dict[str, Any], error_label: bool
) -> None:
    original = copy.deepcopy(settings)
    prof.dict_config(settings)
    assert settings == original  # not modified
    (handler,) = tel.handlers
    assert isinstance(handler, StreamHandler)
    assert handler.name == "stdout_handler"
    assert handler.stream is sys.stdout
    assert handler.kinds == {"profile"}
    assert prof.handlers == {"stdout_handler": handler}
    assert prof.job == "my_app"
    assert tel.service_name == "my_app"  # the job names a service that had no name
    assert isinstance(prof.logger, logging.Logger)
    assert prof.logger.name == "my_app_debug_logger"
    assert tel.profiler_settings == ProfilerSettings(
        time_profile=True, response_size_profile=False, error_raised_label=error_label
    )
    assert prof.handle_records is True


def test_the_job_does_not_rename_a_named_service(prof: Profiler) -> None:
    tel = Telemetry("checkout", handlers=[], install_signal_handlers=False)
    Profiler(tel).dict_config({"job": "my_app"})
    assert tel.service_name == "checkout"
    assert tel.handlers == ()


def test_request_size_profile_is_phanos_deprecated_alias(tel: Telemetry, prof: Profiler) -> None:
    with pytest.warns(DeprecationWarning, match="use response_size_profile"):
        prof.dict_config({"job": "j", "request_size_profile": True})
    assert tel.profiler_settings.response_size_profile is True


@pytest.mark.parametrize(
    ("settings", "key_path", "message"),
    [
        ({}, "job", "required"),
        ({"job": "j", "jobs": 1}, "jobs", "unknown phanos setting"),
        ({"job": "j", "time_profil": True}, "time_profil", "did you mean 'time_profile'"),
        ({"job": "j", "time_profile": "yes"}, "time_profile", "expected true or false"),
        ({"job": "j", "logger": 3}, "logger", "expected a logger name"),
        ({"job": "j", "handlers": []}, "handlers", "expected a mapping"),
        ({"job": "j", "handlers": {"h": 1}}, "handlers.h", "expected a mapping"),
        ({"job": "j", "handlers": {"h": {"handler_name": "x"}}}, "handlers.h.class", "required"),
        (
            {"job": "j", "handlers": {"h": {"class": "phanos.publisher.FancyHandler"}}},
            "handlers.h.class",
            "no pontem-async equivalent",
        ),
        (
            {
                "job": "j",
                "handlers": {"h": {"class": "phanos.handlers.ImpProfHandler", "vhost": "/"}},
            },
            "handlers.h.vhost",
            "unknown option for ImpProfHandler",
        ),
        (
            {
                "job": "j",
                "handlers": {
                    "h": {"class": "phanos.publisher.AsyncImpProfHandler", "exchange_type": "x"}
                },
            },
            "handlers.h.exchange_type",
            "expected one of fanout, topic, direct",
        ),
        (
            {"job": "j", "handlers": {"h": {"class": "collections.OrderedDict"}}},
            "handlers.h.class",
            "not a pontem_async.handlers.Handler subclass",
        ),
        (
            {
                "job": "j",
                "handlers": {
                    "h": {"class": "phanos.publisher.StreamHandler", "output": "ext://sys.nope"}
                },
            },
            "handlers.h.output",
            "cannot resolve",
        ),
        (
            {
                "job": "j",
                "handlers": {"h": {"class": "phanos.publisher.StreamHandler", "colour": True}},
            },
            "handlers.h.colour",
            "unknown option",
        ),
        (
            {
                "job": "j",
                "handlers": {"h": {"class": "phanos.publisher.LoggerHandler", "level": "high"}},
            },
            "handlers.h.level",
            "expected a stdlib logging level",
        ),
    ],
)
def test_invalid_settings_raise_config_error_naming_the_key_and_change_nothing(
    tel: Telemetry, prof: Profiler, settings: dict[str, Any], key_path: str, message: str
) -> None:
    before = (tel.handlers, tel.profiler_settings, tel.service_name, prof.job)
    with pytest.raises(ConfigError, match=message) as info:
        prof.dict_config(settings)
    assert info.value.key_path == key_path
    assert (tel.handlers, tel.profiler_settings, tel.service_name, prof.job) == before


def test_handle_records_false_turns_profiling_off(tel: Telemetry, prof: Profiler) -> None:
    prof.dict_config({"job": "j", "handle_records": False})

    @prof.profile
    def work() -> int:
        return 7

    with capture(tel) as cap:
        assert work() == 7
    assert cap.records == []
    prof.dict_config({"job": "j"})  # phanos' default: handle records
    with capture(tel) as cap:
        work()
    assert len(cap.records) == 1


# ---------------------------------------------------------------------- LoggerHandler


def _tree_record(prof: Profiler) -> ProfileRecord:
    @prof.profile
    def child(fail: bool) -> None:
        if fail:
            raise ValueError("x")

    @prof.profile
    def root() -> None:
        child(False)
        with contextlib.suppress(ValueError):
            child(True)

    with capture(prof.telemetry) as cap:
        root()
    (record,) = cap.records
    assert isinstance(record, ProfileRecord)
    return record


def test_phanos_lines_have_phanos_format_children_first(prof: Profiler) -> None:
    record = _tree_record(prof)
    first, second = record.root.children
    ms = [round((n.duration_ns or 0) / 1e6, 2) for n in (first, second, record.root)]
    path = "test_phanos_compat:root"
    assert phanos_lines(record) == [
        f"profiler: time_profiler, method: {path}.child, value: {ms[0]} mS, "
        "labels: error_raised=False",
        f"profiler: time_profiler, method: {path}.child, value: {ms[1]} mS, "
        "labels: error_raised=True",
        f"profiler: time_profiler, method: {path}, value: {ms[2]} mS, labels: error_raised=False",
    ]
    assert phanos_lines(record, error_raised_label=False)[2] == (
        f"profiler: time_profiler, method: {path}, value: {ms[2]} mS"
    )


@pytest.mark.asyncio
async def test_logger_handlers_from_settings_log_one_message_per_tree(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tel = Telemetry("svc", handlers=[], flush_interval=0.01, install_signal_handlers=False)
    tel.start()
    prof = Profiler(tel)
    logger = logging.getLogger("test.phanos.object")
    prof.dict_config(
        {
            "job": "svc",
            "handlers": {
                "a": {
                    "class": "phanos.publisher.LoggerHandler",
                    "handler_name": "by_object",
                    "logger": f"ext://{__name__}.LOGGER",
                    "level": logging.INFO,
                },
                "b": {
                    "class": "phanos.publisher.NamedLoggerHandler",
                    "handler_name": "by_name",
                    "logger_name": "test.phanos.named",
                },
            },
        }
    )
    assert {h.name: type(h) for h in tel.handlers} == {
        "by_object": LoggerHandler,
        "by_name": NamedLoggerHandler,
    }
    handler = prof.handlers["by_object"]
    assert isinstance(handler, LoggerHandler)
    assert handler.logger is logger

    @prof.profile
    async def work() -> None:
        await asyncio.sleep(0)

    caplog.set_level(logging.DEBUG)
    await work()
    assert await tel.flush()
    got = sorted(
        (r.name, r.levelno, r.getMessage())
        for r in caplog.records
        if r.name.startswith("test.phanos")
    )
    line = got[0][2]
    assert line.startswith("profiler: time_profiler, method: test_phanos_compat:work, value: ")
    assert line.endswith(" mS, labels: error_raised=False")
    assert got == [
        ("test.phanos.named", logging.DEBUG, line),
        ("test.phanos.object", logging.INFO, line),
    ]
    await tel.shutdown(timeout=5)


LOGGER = logging.getLogger("test.phanos.object")


@pytest.mark.broker
@pytest.mark.asyncio
@pytest.mark.parametrize("cls", ["phanos.publisher.AsyncImpProfHandler", "phanos.ImpProfHandler"])
async def test_imp_prof_handlers_publish_call_trees_to_rabbitmq(amqp_url: str, cls: str) -> None:
    from amqp_helpers import drain, exchange_with_queues, unique

    from pontem_async.handlers import RabbitMQHandler

    exchange = unique("phanos")
    tel = Telemetry("svc", handlers=[], flush_interval=0.01, install_signal_handlers=False)
    tel.start()
    prof = Profiler(tel)
    settings = {
        "job": "svc",
        "handlers": {
            "imp": {
                "class": cls.replace("phanos.ImpProf", "phanos.handlers.ImpProf"),
                "handler_name": "imp_prof",
                "host": "127.0.0.1",
                "port": 5672,
                "user": "guest",
                "password": "guest",
                "exchange_name": exchange,
                "retry": 3,  # phanos' connection tuning: accepted, not needed here
            }
        },
    }
    async with exchange_with_queues(amqp_url, exchange) as (queue,):
        prof.dict_config(settings)
        (handler,) = tel.handlers
        assert isinstance(handler, RabbitMQHandler)
        assert (handler.name, handler.url) == ("imp_prof", "amqp://guest:***@127.0.0.1:5672/")
        assert handler.kinds == {"profile"}

        @prof.profile
        async def work() -> None:
            await asyncio.sleep(0)

        await work()
        assert await tel.flush(10)
        received = await drain(queue)
        await tel.shutdown(timeout=5)
    (record,) = received.records
    assert (record["kind"], record["root"]["name"]) == ("profile", "test_phanos_compat:work")
    assert received.messages[0].type == "profile"


def test_logger_handler_defaults_to_phanos_stdout_logger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = LoggerHandler("phanos_default")
    assert handler.handler_name == "phanos_default"
    assert handler.logger.name == "PHANOS"
    assert handler.kinds == {"profile"}
    handler._log(["hello"])
    assert capsys.readouterr().out == "hello\n"
    with pytest.raises(TypeError, match=r"logger: expected a logging\.Logger"):
        LoggerHandler("x", logger=42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- handlers and metrics


def test_add_and_delete_handlers(
    tel: Telemetry, prof: Profiler, caplog: pytest.LogCaptureFixture
) -> None:
    kept = MemoryHandler(name="kept")
    tel.configure(handlers=[kept], start=False, install_signal_handlers=False)
    first, second = MemoryHandler(name="first"), MemoryHandler(name="second")
    prof.add_handler(first)
    prof.add_handler(second)
    assert [h.name for h in tel.handlers] == ["kept", "first", "second"]
    replacement = MemoryHandler(name="first")
    prof.add_handler(replacement)
    assert [h.name for h in tel.handlers] == ["kept", "second", "first"]
    assert tel.handlers[2] is replacement
    prof.delete_handler("second")
    assert [h.name for h in tel.handlers] == ["kept", "first"]
    prof.delete_handler("kept")  # not the profiler's: phanos warns and moves on
    assert [h.name for h in tel.handlers] == ["kept", "first"]
    assert "profiler handler 'kept' does not exist" in caplog.text
    prof.delete_handlers()
    assert [h.name for h in tel.handlers] == ["kept"]
    assert prof.handlers == {}
    with pytest.raises(TypeError, match="expected a pontem_async Handler"):
        prof.add_handler(object())  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_handlers_added_while_running_receive_the_trees() -> None:
    tel = Telemetry("svc", handlers=[], flush_interval=0.01, install_signal_handlers=False)
    tel.start()
    prof = Profiler(tel)
    memory = MemoryHandler(name="memory")
    prof.add_handler(memory)

    @prof.profile
    async def work() -> None:
        pass

    await work()
    assert await tel.flush()
    assert [r.kind for r in memory.records] == ["profile"]
    await tel.shutdown(timeout=5)


def test_delete_metric_stops_a_profile_metric_until_configured_again(
    tel: Telemetry, prof: Profiler, caplog: pytest.LogCaptureFixture
) -> None:
    @prof.profile
    def work() -> None:
        pass

    with capture(tel):
        work()
        assert tel.metrics.get(TIME_PROFILER) is not None
        prof.delete_metric(TIME_PROFILER)
        assert tel.metrics.get(TIME_PROFILER) is None
        work()
        assert tel.metrics.get(TIME_PROFILER) is None
        prof.delete_metric("no_such_metric")
        assert "metric 'no_such_metric' does not exist" in caplog.text
        prof.dict_config({"job": "j", "time_profile": True, "response_size_profile": True})
        work()
        prof.delete_metrics()  # phanos' default keeps the profile metrics
        assert tel.metrics.get(TIME_PROFILER) is not None
        assert tel.metrics.get(RESPONSE_SIZE) is not None
        prof.delete_metrics(rm_time_profile=True, rm_resp_size_profile=True)
        work()
    assert tel.metrics.get(TIME_PROFILER) is None
    assert tel.metrics.get(RESPONSE_SIZE) is None


def test_readme_custom_measurement_hook(tel: Telemetry, prof: Profiler) -> None:
    """phanos' README "Complete example": a before_func feeding a custom metric."""
    calls = tel.metrics.counter("calls", labels=["label_name"])

    def before_function(func: Any, args: Any, kwargs: Any) -> None:
        calls.inc(2, labels={"label_name": "label_value"})

    prof.before_func = before_function

    @prof.profile
    def work() -> None:
        pass

    with capture(tel):
        work()
        work()
    (record,) = [r for r in tel.metrics.snapshot() if r.name == "calls"]
    assert [(p.labels, p.value) for p in record.points] == [({"label_name": "label_value"}, 4)]
