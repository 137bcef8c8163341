"""phanos compatibility: ``Profiler.dict_config`` with phanos' settings dict.

phanos (``Profiler.dict_config`` in ``phanos/publisher.py``, handler creation in
``phanos/config.py``) takes::

    {"job": "my_app", "logger": "my_app_debug_logger", "time_profile": True,
     "response_size_profile": False, "handle_records": True, "error_raised_label": True,
     "handlers": {"ref": {"class": "phanos.publisher.StreamHandler",
                          "handler_name": "stdout_handler", "output": "ext://sys.stdout"}}}

Here every key is validated first (``ConfigError`` with its key path), each handler is mapped to
a pontem-async one and built through the same code as ``pa.dict_config``'s handlers, and only
then is anything changed. phanos' handler classes map to:

- ``StreamHandler(handler_name, output)`` -> ``pontem_async.handlers.StreamHandler`` (console
  format, ``profile`` records only);
- ``LoggerHandler``/``NamedLoggerHandler`` -> ours (``pontem_async._phanos_handlers``), which
  log phanos' lines;
- ``ImpProfHandler``/``AsyncImpProfHandler`` (RabbitMQ) -> ``pontem_async.handlers.
  RabbitMQHandler`` (``url`` built from host/port/user/password, ``exchange_name``/
  ``exchange_type``; connection tuning options are accepted and not carried over). The messages
  are pontem-async's (JSONL call trees, one message per batch), not phanos' JSON arrays.

Both ``phanos.publisher.X`` and ``phanos.handlers.X`` (the spelling phanos' README uses) are
accepted; a pontem-async Handler class path works too. ``request_size_profile`` is phanos'
deprecated name of ``response_size_profile`` and warns the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pontem_async._config_handlers import did_you_mean, parse_handlers
from pontem_async._profile_state import RESPONSE_SIZE, TIME_PROFILER
from pontem_async._redact import show
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import Handler

if TYPE_CHECKING:
    from pontem_async.profiler import Profiler
    from pontem_async.telemetry import Telemetry

__all__ = ["apply_settings", "set_handlers"]

_KEYS = (
    "job", "logger", "time_profile", "response_size_profile", "request_size_profile",
    "handle_records", "error_raised_label", "handlers",
)  # fmt: skip
_FLAGS = ("time_profile", "response_size_profile", "handle_records", "error_raised_label")


Translate = Callable[[dict[str, Any], str], dict[str, Any]]


def _stream(options: dict[str, Any], path: str) -> dict[str, Any]:
    unknown = set(options) - {"output"}
    if unknown:
        raise ConfigError(f"{path}.{sorted(unknown)[0]}", "unknown option for StreamHandler")
    stream = options.get("output", "ext://sys.stdout")
    return {"stream": stream, "format": "console", "kinds": ["profile"]}


def _same(options: dict[str, Any], path: str) -> dict[str, Any]:
    return options


_RABBIT_IGNORED = ("heartbeat", "timeout", "retry", "retry_delay", "logger")


def _rabbitmq(options: dict[str, Any], path: str) -> dict[str, Any]:
    known = {"host", "port", "user", "password", "exchange_name", "exchange_type", *_RABBIT_IGNORED}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", "unknown option for ImpProfHandler")
    user, password = options.get("user"), options.get("password")
    auth = f"{quote(str(user), safe='')}:{quote(str(password or ''), safe='')}@" if user else ""
    url = f"amqp://{auth}{options.get('host', '127.0.0.1')}:{options.get('port', 5672)}/"
    return {
        "url": url,
        "exchange": options.get("exchange_name", "profiling"),
        "exchange_type": options.get("exchange_type", "fanout"),
        "kinds": ["profile"],
    }


_TARGETS: dict[str, tuple[str, Translate]] = {
    "StreamHandler": ("pontem_async.handlers.StreamHandler", _stream),
    "LoggerHandler": ("pontem_async.profiler.LoggerHandler", _same),
    "NamedLoggerHandler": ("pontem_async.profiler.NamedLoggerHandler", _same),
    "ImpProfHandler": ("pontem_async.handlers.RabbitMQHandler", _rabbitmq),
    "AsyncImpProfHandler": ("pontem_async.handlers.RabbitMQHandler", _rabbitmq),
}


def _translate(ref: str, entry: Any) -> tuple[str, dict[str, Any]]:
    """phanos' ``handlers.<ref>`` entry -> (handler name, a ``pa.dict_config`` handler entry)."""
    path = f"handlers.{ref}"
    if not isinstance(entry, Mapping):
        raise ConfigError(
            path, f"expected a mapping with 'class' and 'handler_name', got {show(entry)}"
        )
    options = dict(entry)
    class_path = options.pop("class", None)
    if not isinstance(class_path, str):
        raise ConfigError(
            f"{path}.class", f"required: a handler class path, got {show(class_path)}"
        )
    name = options.pop("handler_name", ref)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.handler_name", f"expected a non-empty string, got {show(name)}")
    module, _, cls_name = class_path.rpartition(".")
    if module in ("phanos.publisher", "phanos.handlers"):
        target = _TARGETS.get(cls_name)
        if target is None:
            raise ConfigError(
                f"{path}.class",
                f"{class_path!r} has no pontem-async equivalent; phanos handlers supported: "
                f"{', '.join(_TARGETS)}{did_you_mean(cls_name, _TARGETS)}",
            )
        class_path, translate = target
        options = translate(options, path)
    if class_path.endswith(("profiler.LoggerHandler", "profiler.NamedLoggerHandler")):
        options.setdefault("error_raised_label", None)  # filled in from the settings
    return name, {"class": class_path, **options}


_RENAMED = {"stream": "output", "url": "host", "exchange": "exchange_name"}


def _phanos_key_path(exc: ConfigError, path: str, entry: Any) -> ConfigError:
    """``exc`` named by the option the user wrote (``output``), not its translation
    (``stream``)."""
    head, _, option = exc.key_path.partition(f"{path}.")
    written = _RENAMED.get(option.split(".", 1)[0])
    if head or written is None or option in entry:
        return exc
    return ConfigError(f"{path}.{written}", exc.reason)


@dataclasses.dataclass
class _Parsed:
    job: str
    logger: str | None
    flags: dict[str, bool]
    handlers: list[Handler]


def _parse(settings: Mapping[str, Any]) -> _Parsed:
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings: expected a mapping, got {type(settings).__name__}")
    for key in settings:
        if key not in _KEYS:
            raise ConfigError(
                str(key), f"unknown phanos setting; expected one of {', '.join(_KEYS)}"
                f"{did_you_mean(str(key), _KEYS)}",
            )  # fmt: skip
    job = settings.get("job")
    if not isinstance(job, str) or not job:
        raise ConfigError("job", f"required: the job (application) name, got {show(job)}")
    logger = settings.get("logger")
    if logger is not None and not isinstance(logger, str):
        raise ConfigError("logger", f"expected a logger name, got {show(logger)}")
    flags: dict[str, bool] = {}
    for key in (*_FLAGS, "request_size_profile"):
        if key in settings:
            if not isinstance(settings[key], bool):
                raise ConfigError(key, f"expected true or false, got {show(settings[key])}")
            flags[key] = settings[key]
    if flags.pop("request_size_profile", False):
        warnings.warn(
            "request_size_profile is deprecated, use response_size_profile",
            DeprecationWarning,
            stacklevel=4,
        )
        flags["response_size_profile"] = True
    section = settings.get("handlers")
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(
            "handlers", f"expected a mapping of handler settings, got {show(section)}"
        )
    handlers = []
    for ref, entry in section.items():
        name, translated = _translate(str(ref), entry)
        if translated.get("error_raised_label", False) is None:
            translated["error_raised_label"] = flags.get("error_raised_label", True)
        try:
            (spec,) = parse_handlers({str(ref): translated}, {}, set())
            handler = spec.build()
        except ConfigError as exc:
            raise _phanos_key_path(exc, f"handlers.{ref}", entry) from None
        handler.name = name
        handlers.append(handler)
    return _Parsed(job, logger, flags, handlers)


def set_handlers(
    telemetry: Telemetry,
    handlers: Sequence[Handler],
    *,
    service_name: str | None = None,
    profiler_settings: Any = None,
) -> None:
    """Give ``telemetry`` these handlers (and service name, profiler settings), keeping every
    other setting. Done by reconfiguring it in place: loggers and metrics keep working, queued
    records are delivered by the old pipeline first, and handlers kept from the old pipeline
    are reopened by the new one."""
    resource = dict(telemetry.resource)
    name = service_name or resource.pop("service.name", telemetry.service_name)
    resource.pop("service.name", None)
    version = resource.pop("service.version", None)
    telemetry.configure(
        name,
        service_version=version,
        resource=resource,
        handlers=list(handlers),
        pipeline=telemetry.options,
        install_signal_handlers=telemetry.install_signal_handlers,
        stdlib_logging=telemetry.stdlib_logging,
        start=telemetry.running,
        metrics=telemetry.metrics_settings,
        profiler=profiler_settings
        if profiler_settings is not None
        else telemetry.profiler_settings,
    )


def apply_settings(profiler: Profiler, settings: Mapping[str, Any]) -> None:
    """phanos' ``dict_config``: validate everything, then configure ``profiler`` and its
    telemetry (phanos adds the handlers to those it has; so does this)."""
    parsed = _parse(settings)
    telemetry = profiler.telemetry
    current = telemetry.profiler_settings
    new_settings = dataclasses.replace(
        current, **{k: v for k, v in parsed.flags.items() if k != "handle_records"}
    )
    service = parsed.job if telemetry.service_name == "unknown_service" else None
    added = {h.name: h for h in parsed.handlers}
    kept = [h for h in telemetry.handlers if h.name not in added]
    if added or service is not None or new_settings != current:
        set_handlers(
            telemetry,
            [*kept, *added.values()],
            service_name=service,
            profiler_settings=new_settings,
        )
    profiler.job = parsed.job
    if parsed.logger is not None:
        profiler.logger = logging.getLogger(parsed.logger)
    profiler._handlers.update(added)
    if new_settings.time_profile:
        profiler._deleted.discard(TIME_PROFILER)
    if new_settings.response_size_profile:
        profiler._deleted.discard(RESPONSE_SIZE)
    profiler.handle_records = parsed.flags.get("handle_records", True)  # also refreshes
