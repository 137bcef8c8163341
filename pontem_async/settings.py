"""Every environment variable pontem-async reads, and the one precedence rule for all of them.

Precedence, implemented once in :func:`resolve`: an explicit argument beats the environment,
which beats the configuration file, which beats the built-in default. Names follow pontem's, so
an application moved from pontem keeps its deployment environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = [
    "PONTEM_AMQP_URL",
    "PONTEM_CONFIG_DIR",
    "PONTEM_EMIT_DIR",
    "PONTEM_EMIT_TARGET",
    "PONTEM_OTLP_ENDPOINT",
    "PONTEM_SERVICE_NAME",
    "PONTEM_SERVICE_VERSION",
    "PONTEM_SITE_DIR",
    "UNSET",
    "resolve",
]

PONTEM_EMIT_DIR = "PONTEM_EMIT_DIR"
"""Directory of the embedded default file handler (default ``./telemetry``)."""
PONTEM_EMIT_TARGET = "PONTEM_EMIT_TARGET"
"""``file`` (default: JSONL files under the emit dir) or ``stdout`` (JSONL on standard output)."""
PONTEM_OTLP_ENDPOINT = "PONTEM_OTLP_ENDPOINT"
"""Base URL of the OTLP/HTTP collector (``http://127.0.0.1:4318``)."""
PONTEM_AMQP_URL = "PONTEM_AMQP_URL"
"""URL of the RabbitMQ broker for the RabbitMQ handler."""
PONTEM_CONFIG_DIR = "PONTEM_CONFIG_DIR"
"""Directory of agent-managed ``<namespace>.json`` files read by ``pa.config``."""
PONTEM_SERVICE_NAME = "PONTEM_SERVICE_NAME"
"""Service name (the ``service.name`` resource attribute)."""
PONTEM_SERVICE_VERSION = "PONTEM_SERVICE_VERSION"
"""Service version (the ``service.version`` resource attribute)."""
PONTEM_SITE_DIR = "PONTEM_SITE_DIR"
"""Directory of the runs started by ``pa.start_run`` (``<site_dir>/<run_id>/telemetry.ndjson``;
default ``./telemetry/runs``)."""

DEFAULT_EMIT_DIR = "./telemetry"
DEFAULT_EMIT_TARGET = "file"
DEFAULT_CONFIG_DIR = "/var/lib/pontem/config"
DEFAULT_SITE_DIR = "./telemetry/runs"


class _Unset:
    """Marks "not given", so None can still be an explicit argument."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()

_T = TypeVar("_T")


def resolve(
    argument: Any,
    env_var: str | None,
    file_value: Any,
    default: _T,
    *,
    parse: Callable[[str], _T] | None = None,
    environ: Mapping[str, str] | None = None,
) -> _T:
    """Pick a setting: argument > environment > file > default.

    ``argument`` and ``file_value`` count as given unless they are :data:`UNSET` (or None);
    an environment variable counts when it is set and not empty. ``parse`` converts the
    environment's string.
    """
    if argument is not UNSET and argument is not None:
        return argument  # type: ignore[no-any-return]
    env = os.environ if environ is None else environ
    if env_var is not None:
        raw = env.get(env_var)
        if raw is not None and raw.strip() != "":
            return parse(raw) if parse is not None else raw  # type: ignore[return-value]
    if file_value is not UNSET and file_value is not None:
        return file_value  # type: ignore[no-any-return]
    return default
