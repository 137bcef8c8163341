"""dict_config / file_config: whole-config validation with key paths before anything starts,
ext:// and class resolution, argument > environment > file > default, JSON and YAML files."""

from __future__ import annotations

import copy
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from pontem_async import dictconfig
from pontem_async._config_schema import resolve_config
from pontem_async.dictconfig import ConfigError, check_config, dict_config, file_config
from pontem_async.handlers.base import Handler
from pontem_async.handlers.file import RotatingFileHandler
from pontem_async.handlers.stream import StreamHandler
from pontem_async.records import Record
from pontem_async.telemetry import Telemetry, _last_resort, get_default
from pontem_async.testing import MemoryHandler

HERE = __name__  # this module, as handler classes and ext:// targets reference it


class EndpointHandler(Handler):
    """Test-only: declares an environment override the way OTLPHandler does."""

    env_overrides: ClassVar[Mapping[str, str]] = {"endpoint": "PONTEM_OTLP_ENDPOINT"}
    secret_fields: ClassVar[frozenset[str]] = frozenset({"dsn"})

    def __init__(
        self,
        endpoint: str = "http://127.0.0.1:4318",
        *,
        retries: int = 3,
        targets: Sequence[Any] = (),
        dsn: str | None = None,
        password: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if password is not None and len(password) < 8:
            raise ValueError(f"password: expected at least 8 characters, got {password!r}")
        if dsn is not None and "://" not in dsn:
            raise ValueError(f"dsn: expected a URL, got {dsn!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries: expected an integer >= 0, got {retries!r}")
        self.endpoint = endpoint
        self.retries = retries
        self.targets = targets
        self.dsn = dsn

    async def emit(self, batch: Sequence[Record]) -> None:
        return None


def only_errors(record: Record) -> bool:
    return True


NOT_CALLABLE = 42


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PONTEM_"):
            monkeypatch.delenv(name)


@pytest_asyncio.fixture
async def default_restored() -> AsyncIterator[Telemetry]:
    """The default telemetry, put back to its last-resort configuration afterwards."""
    telemetry = get_default()
    yield telemetry
    if telemetry.running:
        await telemetry.shutdown(timeout=5)
    telemetry.configure(handlers=_last_resort(), install_signal_handlers=False, start=False)
    dictconfig._applied = None


@pytest.fixture
def untouched() -> Iterator[None]:
    """Asserts the test left the default telemetry exactly as it found it."""
    telemetry = get_default()
    handlers, running = telemetry.handlers, telemetry.running
    yield
    assert (telemetry.handlers, telemetry.running) == (handlers, running)


def valid(**sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 1,
        "service": {"name": "svc"},
        "install_signal_handlers": False,
        "handlers": {"mem": {"class": "pontem_async.testing.MemoryHandler"}},
    }
    config.update(sections)
    return config


def extra(key: Any, value: Any) -> dict[str, Any]:
    config: dict[Any, Any] = valid()
    config[key] = value
    return config


def with_handler(**entry: Any) -> dict[str, Any]:
    return valid(handlers={"x": entry})


STREAM = "pontem_async.handlers.StreamHandler"
ENDPOINT = f"{HERE}.EndpointHandler"

BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("version 2", valid(version=2), "version"),
    ("version true", valid(version=True), "version"),
    ("unknown top-level key", extra("handler", {}), "handler"),
    ("non-string top-level key", extra(1, 2), "1"),
    ("service not a mapping", valid(service="svc"), "service"),
    ("unknown service key", valid(service={"name": "s", "nmae": "t"}), "service.nmae"),
    ("service name missing", valid(service={}), "service.name"),
    ("service name empty", valid(service={"name": " "}), "service.name"),
    ("service name number", valid(service={"name": 5}), "service.name"),
    ("service version list", valid(service={"name": "s", "version": [1]}), "service.version"),
    ("attributes list", valid(service={"name": "s", "attributes": [1]}), "service.attributes"),
    (
        "attribute nested",
        valid(service={"name": "s", "attributes": {"k": {"a": 1}}}),
        "service.attributes.k",
    ),
    (
        "attribute shadows service.name",
        valid(service={"name": "s", "attributes": {"service.name": "t"}}),
        "service.attributes.service.name",
    ),
    ("queue_size 0", valid(pipeline={"queue_size": 0}), "pipeline.queue_size"),
    ("batch_size string", valid(pipeline={"batch_size": "1"}), "pipeline.batch_size"),
    ("flush_interval negative", valid(pipeline={"flush_interval": -1}), "pipeline.flush_interval"),
    ("overflow unknown", valid(pipeline={"overflow": "explode"}), "pipeline.overflow"),
    ("pipeline typo", valid(pipeline={"queue_sise": 1}), "pipeline.queue_sise"),
    ("pipeline list", valid(pipeline=[1]), "pipeline"),
    ("time_profile string", valid(profiler={"time_profile": "yes"}), "profiler.time_profile"),
    ("profiler unknown", valid(profiler={"sampling": True}), "profiler.sampling"),
    ("export_interval 0", valid(metrics={"export_interval": 0}), "metrics.export_interval"),
    ("name_limit float", valid(metrics={"name_limit": 1.5}), "metrics.name_limit"),
    (
        "label_sets_limit bool",
        valid(metrics={"label_sets_limit": True}),
        "metrics.label_sets_limit",
    ),
    ("emit target", {**valid(handlers=None), "emit": {"target": "s3"}}, "emit.target"),
    ("emit dir empty", {**valid(handlers=None), "emit": {"dir": ""}}, "emit.dir"),
    ("emit unknown", {**valid(handlers=None), "emit": {"path": "x"}}, "emit.path"),
    ("emit with handlers", valid(emit={"dir": "x"}), "emit"),
    ("stdlib_logging string", valid(stdlib_logging="no"), "stdlib_logging"),
    ("signal handlers int", valid(install_signal_handlers=1), "install_signal_handlers"),
    ("handlers list", valid(handlers=[{"class": STREAM}]), "handlers"),
    ("handler not a mapping", valid(handlers={"x": STREAM}), "handlers.x"),
    ("class missing", with_handler(level="warn"), "handlers.x.class"),
    ("class not importable", with_handler(**{"class": "no.such.Handler"}), "handlers.x.class"),
    (
        "class attribute missing",
        with_handler(**{"class": "pontem_async.handlers.Nope"}),
        "handlers.x.class",
    ),
    (
        "class not a handler",
        with_handler(**{"class": "collections.OrderedDict"}),
        "handlers.x.class",
    ),
    (
        "class abstract",
        with_handler(**{"class": "pontem_async.handlers.Handler"}),
        "handlers.x.class",
    ),
    ("class not a string", with_handler(**{"class": 3}), "handlers.x.class"),
    ("name option", with_handler(**{"class": STREAM, "name": "y"}), "handlers.x.name"),
    ("unknown option", with_handler(**{"class": STREAM, "bogus": 1}), "handlers.x.bogus"),
    ("kinds a string", with_handler(**{"class": STREAM, "kinds": "log"}), "handlers.x.kinds"),
    ("kinds unknown", with_handler(**{"class": STREAM, "kinds": ["logs"]}), "handlers.x.kinds"),
    ("level unknown", with_handler(**{"class": STREAM, "level": "loud"}), "handlers.x.level"),
    ("filter plain string", with_handler(**{"class": STREAM, "filter": "f"}), "handlers.x.filter"),
    (
        "filter not callable",
        with_handler(**{"class": STREAM, "filter": f"ext://{HERE}.NOT_CALLABLE"}),
        "handlers.x.filter",
    ),
    (
        "ext unresolvable",
        with_handler(**{"class": STREAM, "stream": "ext://sys.nope"}),
        "handlers.x.stream",
    ),
    (
        "constructor ValueError",
        with_handler(**{"class": STREAM, "format": "xml"}),
        "handlers.x.format",
    ),
    ("constructor TypeError", with_handler(**{"class": STREAM, "stream": 3}), "handlers.x.stream"),
    (
        "own handler ValueError",
        with_handler(**{"class": ENDPOINT, "retries": -1}),
        "handlers.x.retries",
    ),
    (
        "ext in nested list",
        with_handler(**{"class": ENDPOINT, "targets": ["ext://sys.stdout", {"s": "ext://nope.x"}]}),
        "handlers.x.targets[1].s",
    ),
    (
        "file max_bytes",
        valid(
            handlers={
                "file": {
                    "class": "pontem_async.handlers.RotatingFileHandler",
                    "path": "t/r.jsonl",
                    "max_bytes": -1,
                }
            }
        ),
        "handlers.file.max_bytes",
    ),
    (
        "file path missing",
        valid(handlers={"file": {"class": "pontem_async.handlers.RotatingFileHandler"}}),
        "handlers.file.path",
    ),
]


@pytest.mark.parametrize(
    ("config", "key_path"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
@pytest.mark.usefixtures("untouched")
def test_invalid_value_raises_config_error_with_its_key_path_and_starts_nothing(
    config: dict[str, Any], key_path: str
) -> None:
    with pytest.raises(ConfigError) as info:
        dict_config(config)
    assert info.value.key_path == key_path
    assert str(info.value).startswith(f"{key_path}: ")


@pytest.mark.usefixtures("untouched")
def test_bad_handler_after_good_ones_leaves_the_default_unchanged() -> None:
    config = valid(
        handlers={
            "mem": {"class": "pontem_async.testing.MemoryHandler"},
            "x": {"class": STREAM, "format": "xml"},
        }
    )
    with pytest.raises(ConfigError, match=r"^handlers\.x\.format: expected one of json, console"):
        dict_config(config)


def test_messages_match_the_design_examples() -> None:
    file_handler = {"class": "pontem_async.handlers.RotatingFileHandler", "path": "t/r.jsonl"}
    cases = [
        (
            valid(handlers={"file": {**file_handler, "max_bytes": -1}}),
            "handlers.file.max_bytes: expected a positive integer, got -1",
        ),
        (
            with_handler(**{"class": "a.b.C"}),
            "handlers.x.class: cannot import 'a.b.C': ModuleNotFoundError: No module named 'a'",
        ),
        (
            with_handler(**{"class": STREAM, "stream": "ext://sys.stdrr"}),
            "handlers.x.stream: cannot resolve 'ext://sys.stdrr': "
            "AttributeError: 'sys' has no attribute 'stdrr' (did you mean 'stderr'?)",
        ),
        (
            {**valid(), "handler": {}},
            "handler: unknown key at the top level; expected one of version, service, pipeline, "
            "profiler, metrics, emit, stdlib_logging, install_signal_handlers, handlers "
            "(did you mean 'handlers'?)",
        ),
    ]
    for config, message in cases:
        with pytest.raises(ConfigError) as info:
            dict_config(config)
        assert str(info.value) == message


def test_unknown_option_lists_the_accepted_ones_and_suggests() -> None:
    config = valid(
        handlers={
            "file": {
                "class": "pontem_async.handlers.RotatingFileHandler",
                "path": "r.jsonl",
                "max_byte": 10,
            }
        }
    )
    with pytest.raises(ConfigError) as info:
        dict_config(config)
    assert str(info.value) == (
        "handlers.file.max_byte: unknown option for RotatingFileHandler; expected one of class, "
        "backup_count, compress, filter, fsync, kinds, level, max_bytes, path "
        "(did you mean 'max_bytes'?)"
    )


def test_unknown_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        dict_config(valid(), servce_name="x")


def test_config_not_a_mapping_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="config: expected a mapping"):
        dict_config([])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- ext://


def test_ext_references_resolve_recursively_and_lstrip_lookalikes_stay_strings() -> None:
    config = with_handler(
        **{
            "class": ENDPOINT,
            "endpoint": "text://x",
            "targets": [
                "ext://sys.stdout",
                {"err": "ext://sys.stderr", "plain": "extra"},
                "ext:/sys.stdout",
                "EXT://sys.stdout",
                "ext://textwrap.dedent",
                "text://sys.stdout",
            ],
            "filter": f"ext://{HERE}.only_errors",
        }
    )
    handler = resolve_config(config, {}).handlers[0].build()  # type: ignore[index]
    assert isinstance(handler, EndpointHandler)
    assert handler.endpoint == "text://x"
    assert handler.targets == [
        sys.stdout,
        {"err": sys.stderr, "plain": "extra"},
        "ext:/sys.stdout",
        "EXT://sys.stdout",
        textwrap.dedent,  # "ext://textwrap.dedent".lstrip("ext://") would be "wrap.dedent"
        "text://sys.stdout",  # "text://sys.stdout".lstrip("ext://") would be "sys.stdout"
    ]
    assert handler.filter is only_errors


def test_stream_handler_gets_the_referenced_stream() -> None:
    resolved = resolve_config(
        with_handler(**{"class": STREAM, "stream": "ext://sys.stdout", "kinds": ["log"]}), {}
    )
    [handler] = resolved.build_handlers()
    assert isinstance(handler, StreamHandler)
    assert (handler.name, handler.stream, handler.kinds) == ("x", sys.stdout, frozenset({"log"}))


def test_credentials_never_appear_in_errors_or_reprs() -> None:
    for options in ({"password": "pw-1234"}, {"dsn": "s3cr3t-dsn"}):
        with pytest.raises(ConfigError) as info:
            dict_config(with_handler(**{"class": ENDPOINT, **options}))
        [secret] = options.values()
        assert info.value.key_path == f"handlers.x.{next(iter(options))}"
        assert secret not in str(info.value)
        assert "***" in str(info.value)
    spec = resolve_config(with_handler(**{"class": ENDPOINT, "dsn": "pg://u:s3cr3t@h"}), {})
    assert "s3cr3t" not in repr(spec)


# ---------------------------------------------------------------------- precedence


def resolved(config: dict[str, Any], **arguments: Any) -> Any:
    return resolve_config(config, arguments)


def test_service_name_argument_beats_env_beats_file(monkeypatch: pytest.MonkeyPatch) -> None:
    config = valid(service={"name": "from-file", "version": "1.0"})
    assert resolved(config).service_name == "from-file"
    monkeypatch.setenv("PONTEM_SERVICE_NAME", "from-env")
    monkeypatch.setenv("PONTEM_SERVICE_VERSION", "2.0")
    assert (resolved(config).service_name, resolved(config).service_version) == ("from-env", "2.0")
    assert resolved(config, service_name="from-arg").service_name == "from-arg"


def test_service_name_may_come_from_env_or_argument_only(monkeypatch: pytest.MonkeyPatch) -> None:
    config = valid(service={})
    assert resolved(config, service_name="arg").service_name == "arg"
    monkeypatch.setenv("PONTEM_SERVICE_NAME", "env")
    assert resolved(config).service_name == "env"


def test_emit_dir_and_target_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"service": {"name": "s"}}
    assert (resolved(config).emit_dir, resolved(config).emit_target) == ("./telemetry", "file")
    config["emit"] = {"dir": "file-dir", "target": "file"}
    assert (resolved(config).emit_dir, resolved(config).emit_target) == ("file-dir", "file")
    monkeypatch.setenv("PONTEM_EMIT_DIR", "env-dir")
    monkeypatch.setenv("PONTEM_EMIT_TARGET", "stdout")
    assert (resolved(config).emit_dir, resolved(config).emit_target) == ("env-dir", "stdout")
    both = resolved(config, emit_dir="arg-dir", emit_target="file")
    assert (both.emit_dir, both.emit_target) == ("arg-dir", "file")


def test_bad_emit_target_from_env_is_reported_at_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONTEM_EMIT_TARGET", "kafka")
    with pytest.raises(ConfigError, match=r"^emit\.target: expected one of file, stdout"):
        resolved({"service": {"name": "s"}})


def test_handler_env_override_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    def endpoint(config: dict[str, Any], **arguments: Any) -> str:
        [handler] = resolved(config, **arguments).build_handlers()
        assert isinstance(handler, EndpointHandler)
        return handler.endpoint

    assert endpoint(with_handler(**{"class": ENDPOINT})) == "http://127.0.0.1:4318"  # default
    in_file = with_handler(**{"class": ENDPOINT, "endpoint": "http://file:4318"})
    assert endpoint(in_file) == "http://file:4318"
    monkeypatch.setenv("PONTEM_OTLP_ENDPOINT", "http://env:4318")
    assert endpoint(in_file) == "http://env:4318"
    assert endpoint(with_handler(**{"class": ENDPOINT})) == "http://env:4318"
    assert endpoint(in_file, otlp_endpoint="http://arg:4318") == "http://arg:4318"


def test_pipeline_argument_beats_file() -> None:
    assert resolved(valid(pipeline={"batch_size": 8}), batch_size=16).pipeline.batch_size == 16


def test_profiler_and_metrics_sections_are_kept_with_defaults() -> None:
    r = resolved(valid(profiler={"response_size_profile": True}, metrics={"name_limit": 5}))
    assert r.profiler == dictconfig.ProfilerSettings(True, True, True)
    assert r.metrics == dictconfig.MetricsSettings(10.0, 5, 2000)


# ---------------------------------------------------------------------- applying


@pytest.mark.asyncio
async def test_dict_config_configures_the_default_in_place(default_restored: Telemetry) -> None:
    config = valid(
        service={"name": "svc", "version": "3", "attributes": {"env": "test"}},
        pipeline={"flush_interval": 0.01},
    )
    telemetry = dict_config(config)
    assert telemetry is get_default()
    assert telemetry.running
    [memory] = telemetry.handlers
    assert isinstance(memory, MemoryHandler)
    assert memory.name == "mem"
    assert dict(telemetry.resource) == {
        "service.name": "svc",
        "service.version": "3",
        "env": "test",
    }
    assert telemetry.options.flush_interval == 0.01
    telemetry.get_logger("t").info("hello", n=1)
    assert await telemetry.flush(timeout=5)
    assert [r.body for r in memory.logs] == ["hello"]
    assert dictconfig.applied_config() is not None


@pytest.mark.asyncio
async def test_design_config_writes_records_to_the_file(
    default_restored: Telemetry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "telemetry" / "records.jsonl"
    config = {
        "version": 1,
        "service": {"name": "checkout", "version": "1.2.0"},
        "pipeline": {
            "queue_size": 10000,
            "batch_size": 512,
            "flush_interval": 1.0,
            "overflow": "drop_oldest",
        },
        "profiler": {
            "time_profile": True,
            "response_size_profile": False,
            "error_raised_label": True,
        },
        "metrics": {"export_interval": 10.0, "name_limit": 1000, "label_sets_limit": 2000},
        "handlers": {
            "console": {
                "class": STREAM,
                "stream": "ext://sys.stderr",
                "kinds": ["log"],
                "level": "warn",
            },
            "file": {
                "class": "pontem_async.handlers.RotatingFileHandler",
                "path": str(path),
                "max_bytes": 10485760,
                "backup_count": 5,
                "compress": True,
            },
        },
    }
    telemetry = dict_config(config, install_signal_handlers=False)
    console, file_handler = telemetry.handlers
    assert isinstance(file_handler, RotatingFileHandler)
    assert (console.name, file_handler.name, file_handler.max_bytes) == (
        "console",
        "file",
        10485760,
    )
    log = telemetry.get_logger("checkout")
    log.info("cart priced", items=3)
    log.warn("payment slow", latency_ms=950)
    assert await telemetry.flush(timeout=5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(ln["kind"], ln["body"]) for ln in lines] == [
        ("log", "cart priced"),
        ("log", "payment slow"),
    ]
    assert lines[0]["resource"]["service.name"] == "checkout"


def test_embedded_default_from_emit_section(
    default_restored: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PONTEM_EMIT_DIR", str(tmp_path / "env"))
    telemetry = dict_config(
        {"service": {"name": "s"}, "emit": {"dir": "unused"}},
        install_signal_handlers=False,
        start=False,
    )
    assert [h.name for h in telemetry.handlers] == ["console", "file"]
    file_handler = telemetry.handlers[1]
    assert isinstance(file_handler, RotatingFileHandler)
    assert file_handler.path == str(tmp_path / "env" / "records.jsonl")
    assert not telemetry.running


# ---------------------------------------------------------------------- files


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


YAML_CONFIG = """\
version: 1
service: {name: from-yaml, version: 1.2.0}
install_signal_handlers: false
handlers:
  mem: {class: pontem_async.testing.MemoryHandler, kinds: [log], level: info}
"""


def test_file_config_reads_yaml_and_json(default_restored: Telemetry, tmp_path: Path) -> None:
    telemetry = file_config(write(tmp_path / "c.yml", YAML_CONFIG), start=False)
    assert (telemetry.service_name, telemetry.resource["service.version"]) == ("from-yaml", "1.2.0")
    [mem] = telemetry.handlers
    assert (mem.name, mem.kinds, mem.level.name) == ("mem", frozenset({"log"}), "INFO")
    as_json = json.dumps(valid(service={"name": "from-json"}))
    telemetry = file_config(write(tmp_path / "c.json", as_json), start=False)
    assert telemetry.service_name == "from-json"


@pytest.mark.parametrize(
    ("name", "text", "key_path", "message"),
    [
        ("bad.json", '{"version": 1,\n  "service": }', "bad.json:2:14", "invalid JSON: "),
        ("bad.yaml", "version: 1\nservice: [a\n", "bad.yaml:3:1", "invalid YAML: "),
        ("list.json", "[1]", "list.json", "expected a mapping at the top level, got a list"),
        ("empty.yaml", "", "empty.yaml", "expected a mapping at the top level, got an empty file"),
        ("latin1.json", '{"a": "\xe9"}', "latin1.json", "not UTF-8 text"),
    ],
)
@pytest.mark.usefixtures("untouched")
def test_malformed_file_names_the_file_and_line(
    tmp_path: Path, name: str, text: str, key_path: str, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1" if name.startswith("latin1") else "utf-8"))
    with pytest.raises(ConfigError) as info:
        file_config(path)
    assert info.value.key_path == str(tmp_path / key_path)
    assert info.value.reason.startswith(message)


@pytest.mark.usefixtures("untouched")
def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file: No such file"):
        file_config(tmp_path / "absent.json")


@pytest.mark.usefixtures("untouched")
def test_yaml_without_pyyaml_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ConfigError, match=r"reading YAML needs PyYAML: pip install"):
        file_config(write(tmp_path / "c.yaml", YAML_CONFIG))


def test_check_config_fills_defaults_and_keeps_references_as_written() -> None:
    config = copy.deepcopy(with_handler(**{"class": STREAM, "stream": "ext://sys.stderr"}))
    shown = check_config(config)
    assert shown["handlers"] == {
        "x": {
            "class": STREAM,
            "kinds": ["event", "log", "metric", "profile", "series"],
            "level": "trace",
            "filter": None,
            "stream": "ext://sys.stderr",
            "format": "console",
            "color": None,
        },
    }
    assert shown["pipeline"]["queue_size"] == 10000
    assert shown["service"] == {"name": "svc", "version": None, "attributes": {}}
