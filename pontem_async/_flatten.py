"""Configuration as attributes: ``pa.log_config(mapping)`` and ``pa.log_attributes(prefix, ...)``.

A training run's hyperparameters are a nested structure (``{"optimizer": {"lr": 3e-4}}``,
``layers: [64, 64]``); dashboards and OTLP attributes want flat keys. Both functions flatten to
dotted keys — ``optimizer.lr``, lists by index as ``layers.0`` — and record the result **once per
run**: logging the same content again in the same run records nothing (a loop that calls
``log_config`` every epoch writes one line), while changed content is recorded again, so the
newest line always holds what is in force.

What they produce: **one log record** (severity INFO, logger ``pontem_async.config``, body
``config`` or ``attributes``) whose attributes are the flattened keys. A log record, rather than
an event of a new type, because every handler already carries logs (file, stream, OTLP,
RabbitMQ, SQL), readers already filter them by logger and body, and OTLP log attributes hold
exactly these flat scalar values. A handler whose ``level`` is above INFO does not get it.

"Run": the active run (``pa.start_run``; its id is the ``pontem.run_id`` resource attribute,
which the record carries too), and outside runs the life of the
:class:`~pontem_async.Telemetry` instance. A new run records the configuration again. Flattening
rules:

- mappings (dicts, OmegaConf configs, any ``Mapping``), dataclass instances and
  ``argparse.Namespace`` objects are walked; lists and tuples by index; an empty container is
  kept as the value ``{}``/``[]`` so it is not lost;
- keys are ``str`` (``int``/``float``/``bool`` keys are written with ``str()``); an empty key,
  another key type, a structure containing itself, or two paths that flatten to the same key
  (``{"a.b": 1, "a": {"b": 2}}``) raise :class:`~pontem_async.ValidationError`;
- leaves: ``str``, ``bool``, ``int``, ``float`` and ``None`` as they are; other numbers (NumPy
  scalars, Fractions) as ``int``/``float``; NumPy arrays as lists; anything else (paths, enums,
  objects) as ``str(value)``, so every handler can carry every value.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import numbers
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from pontem_async._metric_values import show
from pontem_async.errors import ValidationError
from pontem_async.events import RUN_ID_ATTRIBUTE
from pontem_async.records import Level, LogRecord

if TYPE_CHECKING:
    from pontem_async.telemetry import Telemetry

__all__ = ["CONFIG_LOGGER", "flatten", "log_attributes", "log_config"]

CONFIG_LOGGER = "pontem_async.config"
"""The logger name (OTel instrumentation scope) of config records."""
MAX_DEPTH = 64
"""Deepest nesting flattened; deeper structures are refused (they are never a config)."""

_seen: weakref.WeakKeyDictionary[Telemetry, dict[str | None, set[bytes]]] = (
    weakref.WeakKeyDictionary()
)
_seen_lock = threading.Lock()


def _walkable(value: Any) -> Mapping[Any, Any] | None:
    """The items of a value flattened as a mapping, or None for anything else."""
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, argparse.Namespace):
        return vars(value)
    return None


def _leaf(value: Any) -> Any:
    cls = value.__class__
    if cls is str or cls is int or cls is float or cls is bool or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def _key(key: Any, path: str, argument: str) -> str:
    if isinstance(key, str):
        text = str.__str__(key)
    elif isinstance(key, int | float):  # bool included
        text = str(key)
    else:
        where = f" under {path!r}" if path else ""
        raise ValidationError(argument, f"keys must be str, got {show(key)}{where}")
    if not text:
        where = f" under {path!r}" if path else ""
        raise ValidationError(argument, f"keys must not be empty{where}")
    return text


def flatten(mapping: Any, prefix: str = "", *, argument: str = "mapping") -> dict[str, Any]:
    """``mapping`` as a flat dict of dotted keys (see the module docstring for the rules).

    Raises:
        ValidationError: naming ``argument``: not a mapping, a bad or empty key, a cycle, too
            deep, or two paths that flatten to the same key.
    """
    top = _walkable(mapping)
    if top is None:
        raise ValidationError(
            argument, f"expected a mapping (or a dataclass / Namespace), got {show(mapping)}"
        )
    out: dict[str, Any] = {}
    _walk(top, prefix, out, [id(mapping)], argument)
    return out


def _walk(
    items: Mapping[Any, Any] | list[Any] | tuple[Any, ...],
    path: str,
    out: dict[str, Any],
    stack: list[int],
    argument: str,
) -> None:
    if len(stack) > MAX_DEPTH:
        raise ValidationError(argument, f"nested deeper than {MAX_DEPTH} levels at {path!r}")
    pairs = items.items() if isinstance(items, Mapping) else enumerate(items)
    for raw_key, value in pairs:
        key = _key(raw_key, path, argument)
        full = f"{path}.{key}" if path else key
        children: Mapping[Any, Any] | list[Any] | tuple[Any, ...] | None = _walkable(value)
        if children is None and isinstance(value, list | tuple):
            children = value
        if children is None and type(value).__module__ == "numpy" and hasattr(value, "tolist"):
            value = value.tolist()  # an array becomes a list, a NumPy scalar a number
            children = value if isinstance(value, list) else None
        if children is not None and len(children):
            if id(value) in stack:
                raise ValidationError(argument, f"the structure contains itself at {full!r}")
            stack.append(id(value))
            _walk(children, full, out, stack, argument)
            stack.pop()
            continue
        if full in out:
            raise ValidationError(
                argument, f"two entries flatten to the same key {full!r}; rename one"
            )
        if children is not None:  # an empty container: keep it visible
            out[full] = {} if isinstance(children, Mapping) else []
        else:
            out[full] = _leaf(value)


def _record(telemetry: Telemetry | None, body: str, attributes: dict[str, Any]) -> bool:
    from pontem_async.telemetry import get_default

    tel = telemetry if telemetry is not None else get_default()
    if tel._min_log_severity > Level.INFO:
        return False  # nobody takes it: not recorded, so not remembered either
    content = orjson.dumps(
        [body, attributes], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    )
    digest = hashlib.blake2b(content, digest_size=16).digest()
    resource = tel.resource
    run = resource.get(RUN_ID_ATTRIBUTE)
    with _seen_lock:
        runs = _seen.get(tel)
        if runs is None:
            runs = _seen[tel] = {}
        seen = runs.setdefault(run, set())
        if digest in seen:
            return False
        seen.add(digest)
    record = LogRecord(time.time_ns(), Level.INFO, body, attributes, CONFIG_LOGGER, resource)
    try:
        tel._submit(record)
    except Exception:
        with _seen_lock:
            seen.discard(digest)  # not recorded: a later call may try again
        raise
    return True


def log_config(mapping: Any, *, telemetry: Telemetry | None = None) -> bool:
    """Record a run's configuration once, flattened to dotted keys (``optimizer.lr``).

    Args:
        mapping: a (nested) mapping, dataclass instance or ``argparse.Namespace``.
        telemetry: the instance to record through (default: the module's).

    Returns:
        True when a record was made; False when the same configuration was already recorded
        in this run (or no handler takes INFO logs).

    Raises:
        ValidationError: ``mapping`` cannot be flattened (see the module docstring).
        QueueFullError: the overflow policy is ``raise`` and a queue is full.
    """
    return _record(telemetry, "config", flatten(mapping))


def log_attributes(prefix: str, mapping: Any, *, telemetry: Telemetry | None = None) -> bool:
    """Record named attributes once per run, flattened under ``prefix``
    (``log_attributes("env", {"name": "cartpole"})`` records ``env.name``).

    Args:
        prefix: the key prefix (``""`` for none); dotted prefixes (``data.train``) work.

    Returns and raises as :func:`log_config` (the record's body is ``attributes``).
    """
    if not isinstance(prefix, str):
        raise ValidationError("prefix", f"expected a str, got {show(prefix)}")
    if prefix != prefix.strip() or prefix.startswith(".") or prefix.endswith("."):
        raise ValidationError("prefix", f"expected a key prefix such as 'env', got {prefix!r}")
    return _record(telemetry, "attributes", flatten(mapping, str.__str__(prefix)))
