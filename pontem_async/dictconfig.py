"""Configuration from a dict or a JSON/YAML file, validated as a whole before anything starts.

::

    telemetry = pa.dict_config({
        "version": 1,
        "service": {"name": "checkout", "version": "1.2.0"},
        "handlers": {
            "console": {"class": "pontem_async.handlers.StreamHandler",
                        "stream": "ext://sys.stderr", "kinds": ["log"], "level": "warn"},
        },
    })

Why validate first: a configuration error found after half the handlers were opened leaves a
process with files created, connections made and the old pipeline gone. Here every value is
checked (and every handler constructed, not opened) before the default instance is touched;
the first invalid value raises :class:`ConfigError` naming its key path
(``handlers.file.max_bytes: expected a positive integer, got -1``).

The schema and the precedence rule (argument > environment > file > default) are described in
``pontem_async._config_schema``; the ``handlers`` section in ``pontem_async._config_handlers``.
``check-config FILE`` prints the resolved configuration with credentials redacted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from pontem_async._config_handlers import HandlerSpec
from pontem_async._config_schema import (
    MetricsSettings,
    ProfilerSettings,
    ResolvedConfig,
    resolve_config,
)
from pontem_async._redact import jsonable, redact, redact_text
from pontem_async.errors import ConfigError
from pontem_async.telemetry import Telemetry, get_default

__all__ = [
    "ConfigError",
    "MetricsSettings",
    "ProfilerSettings",
    "ResolvedConfig",
    "add_check_config_arguments",
    "applied_config",
    "check_config",
    "dict_config",
    "file_config",
    "load_file",
]

_YAML_SUFFIXES = (".yaml", ".yml")
_applied: ResolvedConfig | None = None


def dict_config(config: Mapping[str, Any], *, start: bool = True, **arguments: Any) -> Telemetry:
    """Validate ``config``, then configure (and by default start) the default instance.

    Args:
        config: the configuration (see the schema in ``pontem_async._config_schema``).
        start: start the pipeline now (False: at the first record or ``telemetry.start()``).
        **arguments: explicit settings, beating the environment and ``config``:
            ``service_name``, ``service_version``, ``resource``, ``emit_dir``, ``emit_target``,
            ``stdlib_logging``, ``install_signal_handlers``, pipeline fields (``queue_size``,
            ...), and ``otlp_endpoint``/``amqp_url``/... for handlers that declare those
            environment variables in ``env_overrides``.

    Returns:
        The default :class:`Telemetry`, reconfigured in place.

    Raises:
        ConfigError: an invalid value, named by its key path; nothing was changed or started.
        TypeError: ``config`` is not a mapping or an argument is unknown.
    """
    global _applied
    resolved = resolve_config(config, arguments)
    handlers = resolved.build_handlers()
    telemetry = get_default().configure(
        resolved.service_name,
        service_version=resolved.service_version,
        resource=resolved.resource,
        handlers=handlers,
        pipeline=resolved.pipeline,
        install_signal_handlers=resolved.install_signal_handlers,
        stdlib_logging=resolved.stdlib_logging,
        metrics=resolved.metrics,
        profiler=resolved.profiler,
        start=start,
    )
    _applied = resolved
    return telemetry


def applied_config() -> ResolvedConfig | None:
    """What the last successful :func:`dict_config`/:func:`file_config` applied (its
    ``profiler`` and ``metrics`` settings included), or None."""
    return _applied


def load_file(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file, or YAML for ``.yaml``/``.yml`` (needs PyYAML).

    Raises:
        ConfigError: keyed by the file name (``name:line:column`` when the parser says where)
            when the file cannot be read or parsed.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(
            name, f"cannot read the configuration file: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    if name.lower().endswith(_YAML_SUFFIXES):
        return _load_yaml(name, text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}") from None


def _load_yaml(name: str, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            name, "reading YAML needs PyYAML: pip install 'pontem-async[yaml]' (or use JSON)"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(where, f"invalid YAML: {problem}") from None


def _load_mapping(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    data = load_file(path)
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(os.fspath(path), f"expected a mapping at the top level, got {got}")
    return data


def file_config(path: str | os.PathLike[str], *, start: bool = True, **arguments: Any) -> Telemetry:
    """:func:`dict_config` of a JSON or YAML file (``.yaml``/``.yml``); see :func:`load_file`.

    Relative paths inside the file (``emit.dir``, a file handler's ``path``) are relative to the
    current directory, as with :func:`dict_config`.
    """
    return dict_config(_load_mapping(path), start=start, **arguments)


# ---------------------------------------------------------------------- check-config


def check_config(
    config: str | os.PathLike[str] | Mapping[str, Any], **arguments: Any
) -> dict[str, Any]:
    """Validate a configuration file (or mapping) and return it resolved, secrets redacted.

    Every precedence rule is applied and defaults are filled in; handler classes are shown as
    the dotted paths written, ``ext://`` references as written, and credentials as ``"***"``.
    Handlers are constructed to validate them, never opened; nothing is started.

    Raises:
        ConfigError: the first invalid value, named by its key path.
    """
    data = config if isinstance(config, Mapping) else _load_mapping(config)
    resolved = resolve_config(data, arguments)
    handlers = resolved.build_handlers()
    out: dict[str, Any] = {
        "version": 1,
        "service": {
            "name": resolved.service_name,
            "version": resolved.service_version,
            "attributes": dict(resolved.resource),
        },
        "pipeline": _vars_of(resolved.pipeline),
        "profiler": _vars_of(resolved.profiler),
        "metrics": _vars_of(resolved.metrics),
        "stdlib_logging": resolved.stdlib_logging,
        "install_signal_handlers": resolved.install_signal_handlers,
    }
    shown: dict[str, Any] = {}
    if resolved.handlers is None:
        out["emit"] = {"dir": resolved.emit_dir, "target": resolved.emit_target}
        for handler in handlers:
            cls = type(handler)
            info = {k: v for k, v in handler.describe().items() if k != "name"}
            shown[handler.name] = redact(
                jsonable({"class": f"{cls.__module__}.{cls.__qualname__}", **info}),
                cls.secret_fields,
            )
    else:
        for spec, handler in zip(resolved.handlers, handlers, strict=True):
            shown[spec.name] = _show_handler(spec, handler)
    out["handlers"] = shown
    result: dict[str, Any] = redact(jsonable(out))
    return result


def _vars_of(obj: object) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def _show_handler(spec: HandlerSpec, handler: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"class": spec.class_path}
    entry["kinds"] = spec.written.get("kinds", sorted(handler.kinds))
    entry["level"] = spec.written.get("level", handler.level.name.lower())
    entry["filter"] = spec.written.get("filter")
    entry.update({k: v for k, v in spec.written.items() if k not in entry})
    entry.update({k: v for k, v in spec.defaults.items() if k not in entry})
    shown: dict[str, Any] = redact(jsonable(entry), spec.cls.secret_fields)
    return shown


def _render(data: Mapping[str, Any], as_json: bool) -> str:
    if not as_json:
        try:
            import yaml
        except ImportError:
            pass
        else:
            text: str = yaml.safe_dump(
                dict(data), sort_keys=False, default_flow_style=False, allow_unicode=True
            )
            return text.rstrip("\n")
    return json.dumps(data, indent=2, ensure_ascii=False)


def _run_check_config(args: argparse.Namespace) -> int:
    try:
        resolved = check_config(args.file)
    except ConfigError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    print(_render(resolved, args.json))
    return 0


def add_check_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``check-config FILE [--json]``; sets ``run`` to the command."""
    parser.add_argument("file", metavar="FILE", help="a JSON or YAML (.yaml/.yml) config file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON (default: YAML when PyYAML is installed, else indented JSON)",
    )
    parser.set_defaults(run=_run_check_config)
