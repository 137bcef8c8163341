"""Agent-managed configuration values: ``pa.config("scoring", "threshold", default=0.85)``.

The pontem agent writes one JSON object per namespace to ``$PONTEM_CONFIG_DIR/<namespace>.json``
(default ``/var/lib/pontem/config``); values may be any JSON type and come back as the matching
Python type. This module reads those files the way an application needs:

- **lazy**: nothing is read until a namespace is first asked for;
- **cached**: each namespace is read once; ``pa.config.reload()`` re-reads every namespace read
  so far (and looks ``PONTEM_CONFIG_DIR`` up again);
- **forgiving**: a missing file means "no values" (every lookup returns its default); a malformed
  file (not JSON, or not a JSON object) keeps the last good values (the defaults if there were
  none) and logs one warning per bad version of the file on the ``pontem_async`` logger;
- **thread-safe**: a reload swaps whole snapshots, so a reader sees one version or the other.

Values handed out are copies, so mutating a returned list or dict never changes the cache.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import Any

from pontem_async import settings

__all__ = ["AgentConfig", "config"]

_internal = logging.getLogger("pontem_async")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


class _Namespace:
    __slots__ = ("bad", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] | None = None  # last good values; None: never read good
        self.bad: Hashable | None = None  # the bad version last warned about


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        raise ValueError(f"namespace: expected a string, got {type(namespace).__name__}")
    separators = {"/", "\\", "\0", os.sep, os.altsep or "/"}
    if not namespace or ".." in namespace or any(s in namespace for s in separators):
        raise ValueError(
            f"namespace: expected a file name without path separators or '..', got {namespace!r}"
        )
    return namespace


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "a number")


class AgentConfig:
    """The callable behind ``pa.config``; see the module docstring."""

    __slots__ = ("_cache", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, _Namespace] = {}

    def __call__(self, namespace: str, key: str, default: Any = None) -> Any:
        """The value of ``key`` in ``namespace``, or ``default`` when absent.

        Raises:
            ValueError: ``namespace`` is not a plain file name, or ``key`` is not a string.
        """
        _check_namespace(namespace)
        if not isinstance(key, str):
            raise ValueError(f"key: expected a string, got {type(key).__name__}")
        values = self._values(namespace)
        if key not in values:
            return default
        value = values[key]
        return copy.deepcopy(value) if isinstance(value, dict | list) else value

    def namespace(self, namespace: str) -> Mapping[str, Any]:
        """A read-only snapshot of every value of ``namespace`` (empty when it has no file)."""
        _check_namespace(namespace)
        return MappingProxyType(copy.deepcopy(self._values(namespace)))

    def reload(self) -> None:
        """Re-read every namespace read so far, from the current ``PONTEM_CONFIG_DIR``."""
        with self._lock:
            for name, state in self._cache.items():
                _read_into(name, state)

    def _values(self, namespace: str) -> Mapping[str, Any]:
        state = self._cache.get(namespace)
        if state is None:
            with self._lock:
                state = self._cache.get(namespace)
                if state is None:
                    state = _Namespace()
                    _read_into(namespace, state)
                    self._cache[namespace] = state
        values = state.values
        return values if values is not None else {}

    def __repr__(self) -> str:
        return f"<AgentConfig namespaces={sorted(self._cache)}>"


def _read_into(namespace: str, state: _Namespace) -> None:
    """Read ``namespace``'s file into ``state``: new values, or a warning and the old ones."""
    directory = settings.resolve(
        None, settings.PONTEM_CONFIG_DIR, settings.UNSET, settings.DEFAULT_CONFIG_DIR
    )
    path = os.path.join(directory, f"{namespace}.json")
    version: Hashable
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        state.values, state.bad = {}, None
        return
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
        version = (path, "unreadable", exc.errno)
    else:
        try:
            data = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            problem = f"is not valid JSON ({exc})"
        else:
            if isinstance(data, dict):
                state.values, state.bad = data, None
                return
            problem = f"must hold a JSON object, not {_json_type(data)}"
        version = (path, hashlib.sha256(raw).digest())
    if state.bad != version:
        state.bad = version
        kept = "keeping the last good values" if state.values is not None else "using defaults"
        _internal.warning("pontem-async agent config %s %s; %s", path, problem, kept)


config = AgentConfig()
"""``pa.config(namespace, key, default=None)``; also ``.namespace(ns)`` and ``.reload()``."""
