"""The ``dict_config`` schema: every section validated, with key paths, before anything is built.

::

    version: 1                                    # optional; the only schema version so far
    service: {name, version, attributes}          # name required unless argument/env give it
    pipeline: {queue_size, batch_size, flush_interval, overflow, handler_timeout,
               shutdown_timeout}                  # PipelineOptions
    profiler: {time_profile, response_size_profile, error_raised_label}        # bools
    metrics: {export_interval, name_limit, label_sets_limit}                   # positive
    emit: {dir, target}                           # the embedded default, when handlers is omitted
    stdlib_logging: false
    install_signal_handlers: true
    handlers: {<name>: {class, kinds, level, filter, <constructor options>}}

Explicit keyword arguments beat the environment, which beats the file, which beats the default
(:func:`pontem_async.settings.resolve`). The arguments: ``service_name``, ``service_version``,
``resource``, ``emit_dir``, ``emit_target``, ``stdlib_logging``, ``install_signal_handlers``, the
``PipelineOptions`` fields, and one per environment variable a handler class declares in
``env_overrides`` (``otlp_endpoint`` for ``PONTEM_OTLP_ENDPOINT``, ``amqp_url``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from pontem_async import settings
from pontem_async._config_handlers import HandlerSpec, argument_name, did_you_mean, parse_handlers
from pontem_async._redact import show
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import Handler
from pontem_async.pipeline import PipelineOptions
from pontem_async.telemetry import EMIT_TARGETS, default_handlers

__all__ = ["MetricsSettings", "ProfilerSettings", "ResolvedConfig", "resolve_config"]

TOP_LEVEL_KEYS = (
    "version",
    "service",
    "pipeline",
    "profiler",
    "metrics",
    "emit",
    "stdlib_logging",
    "install_signal_handlers",
    "handlers",
)
_SERVICE_KEYS = ("name", "version", "attributes")
_EMIT_KEYS = ("dir", "target")
_PIPELINE_KEYS = tuple(f.name for f in fields(PipelineOptions))
_ENV_ARGUMENTS = frozenset(
    argument_name(getattr(settings, n))
    for n in settings.__all__
    if n.startswith("PONTEM_") and n != "PONTEM_CONFIG_DIR"
)
_ARGUMENTS = frozenset(
    {"resource", "stdlib_logging", "install_signal_handlers", *_PIPELINE_KEYS, *_ENV_ARGUMENTS}
)


@dataclass(frozen=True)
class ProfilerSettings:
    """The ``profiler`` section (used by the profiler)."""

    time_profile: bool = True
    response_size_profile: bool = False
    error_raised_label: bool = True


@dataclass(frozen=True)
class MetricsSettings:
    """The ``metrics`` section: export period in seconds and cardinality caps."""

    export_interval: float = 10.0
    name_limit: int = 1000
    label_sets_limit: int = 2000


@dataclass(frozen=True)
class ResolvedConfig:
    """A validated configuration, every precedence rule applied; nothing built or started.

    ``handlers`` is None when the section was omitted: the embedded default handlers are then
    built from ``emit_dir`` and ``emit_target``.
    """

    service_name: str
    service_version: str | None
    resource: Mapping[str, Any]
    pipeline: PipelineOptions
    profiler: ProfilerSettings
    metrics: MetricsSettings
    emit_dir: str
    emit_target: str
    stdlib_logging: bool
    install_signal_handlers: bool
    handlers: tuple[HandlerSpec, ...] | None

    def build_handlers(self) -> list[Handler]:
        """Construct (not open) every handler; ConfigError names the failing option."""
        if self.handlers is None:
            return default_handlers(self.emit_dir, self.emit_target)
        return [spec.build() for spec in self.handlers]


# ---------------------------------------------------------------------- value checks


def _check_keys(mapping: Mapping[Any, Any], allowed: Sequence[str], prefix: str) -> None:
    for key in mapping:
        path = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(prefix.rstrip(".") or path, f"keys must be strings, got {key!r}")
        if key not in allowed:
            where = f"in {prefix.rstrip('.')}" if prefix else "at the top level"
            raise ConfigError(
                path,
                f"unknown key {where}; expected one of {', '.join(allowed)}"
                f"{did_you_mean(key, allowed)}",
            )


def _section(config: Mapping[str, Any], key: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a mapping, got {show(value)}")
    _check_keys(value, allowed, f"{key}.")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {show(value)}")
    return value


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(path, f"expected a positive integer, got {show(value)}")
    return value


def _positive_number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(path, f"expected a positive number, got {show(value)}")
    return float(value)


def _non_empty_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"expected a non-empty string, got {show(value)}")
    return value


_ATTRIBUTE_SCALARS = (str, bool, int, float)


def _attributes(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a mapping of attribute name to value, got {show(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(path, f"attribute names must be non-empty strings, got {key!r}")
        if key in ("service.name", "service.version"):
            raise ConfigError(f"{path}.{key}", f"set it as {key} of the service section instead")
        scalar = isinstance(item, _ATTRIBUTE_SCALARS)
        array = isinstance(item, list | tuple) and all(
            isinstance(v, _ATTRIBUTE_SCALARS) for v in item
        )
        if not (scalar or array):
            raise ConfigError(
                f"{path}.{key}",
                f"expected a string, number, boolean or a list of them, got {show(item)}",
            )
        out[key] = list(item) if array else item
    return out


# ---------------------------------------------------------------------- sections


def _version(config: Mapping[str, Any]) -> None:
    version = config.get("version", 1)
    if isinstance(version, bool) or version != 1:
        raise ConfigError("version", f"expected 1 (the only schema version), got {show(version)}")


def _service(
    config: Mapping[str, Any], args: Mapping[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    section = _section(config, "service", _SERVICE_KEYS)
    name = settings.resolve(
        args.get("service_name"), settings.PONTEM_SERVICE_NAME, section.get("name"), settings.UNSET
    )
    if name is settings.UNSET:
        raise ConfigError(
            "service.name",
            f"required (or set {settings.PONTEM_SERVICE_NAME}, or pass service_name=...)",
        )
    name = _non_empty_str(name, "service.name")
    version = settings.resolve(
        args.get("service_version"),
        settings.PONTEM_SERVICE_VERSION,
        section.get("version"),
        None,
    )
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, str | int | float):
            raise ConfigError("service.version", f"expected a string, got {show(version)}")
        version = _non_empty_str(str(version), "service.version")
    resource = _attributes(section.get("attributes") or {}, "service.attributes")
    if args.get("resource") is not None:
        resource.update(_attributes(args["resource"], "service.attributes"))
    return name, version, resource


def _pipeline(config: Mapping[str, Any], args: Mapping[str, Any]) -> PipelineOptions:
    values = dict(_section(config, "pipeline", _PIPELINE_KEYS))
    values.update({k: args[k] for k in _PIPELINE_KEYS if args.get(k) is not None})
    return PipelineOptions(**values)


def _profiler(config: Mapping[str, Any]) -> ProfilerSettings:
    keys = tuple(f.name for f in fields(ProfilerSettings))
    section = _section(config, "profiler", keys)
    return ProfilerSettings(**{k: _bool(v, f"profiler.{k}") for k, v in section.items()})


def _metrics(config: Mapping[str, Any]) -> MetricsSettings:
    section = _section(config, "metrics", tuple(f.name for f in fields(MetricsSettings)))
    values: dict[str, Any] = {}
    for key, value in section.items():
        check = _positive_number if key == "export_interval" else _positive_int
        values[key] = check(value, f"metrics.{key}")
    return MetricsSettings(**values)


def _emit(config: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[str, str]:
    section = _section(config, "emit", _EMIT_KEYS)
    if section and config.get("handlers") is not None:
        raise ConfigError(
            "emit", "only used when handlers is omitted (the embedded default); remove one"
        )
    target = settings.resolve(
        args.get("emit_target"),
        settings.PONTEM_EMIT_TARGET,
        section.get("target"),
        settings.DEFAULT_EMIT_TARGET,
    )
    if target not in EMIT_TARGETS:
        raise ConfigError(
            "emit.target", f"expected one of {', '.join(EMIT_TARGETS)}, got {show(target)}"
        )
    directory = settings.resolve(
        args.get("emit_dir"),
        settings.PONTEM_EMIT_DIR,
        section.get("dir"),
        settings.DEFAULT_EMIT_DIR,
    )
    if isinstance(directory, os.PathLike):
        directory = os.fspath(directory)
    return _non_empty_str(directory, "emit.dir"), target


def _flag(config: Mapping[str, Any], args: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.resolve(args.get(key), None, config.get(key), default)
    return _bool(value, key)


def resolve_config(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> ResolvedConfig:
    """Validate ``config`` with ``arguments`` applied over the environment and the file.

    Raises:
        ConfigError: the first invalid value, named by its key path.
        TypeError: ``config`` is not a mapping, or an argument is not one this function takes.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a mapping, got {type(config).__name__}")
    _check_keys(config, TOP_LEVEL_KEYS, "")
    _version(config)
    service_name, service_version, resource = _service(config, arguments)
    pipeline = _pipeline(config, arguments)
    profiler = _profiler(config)
    metrics = _metrics(config)
    emit_dir, emit_target = _emit(config, arguments)
    stdlib_logging = _flag(config, arguments, "stdlib_logging", False)
    install_signals = _flag(config, arguments, "install_signal_handlers", True)
    used: set[str] = set()
    handlers = None
    if config.get("handlers") is not None:
        handlers = parse_handlers(config["handlers"], arguments, used)
    unknown = sorted(set(arguments) - _ARGUMENTS - used)
    if unknown:
        accepted = ", ".join(sorted(_ARGUMENTS | used))
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; expected {accepted}")
    return ResolvedConfig(
        service_name,
        service_version,
        resource,
        pipeline,
        profiler,
        metrics,
        emit_dir,
        emit_target,
        stdlib_logging,
        install_signals,
        handlers,
    )
