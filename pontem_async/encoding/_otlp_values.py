"""OTLP/JSON building blocks: ``AnyValue``, attribute lists, resources, and the final bytes.

The OTLP JSON mapping is proto3's canonical JSON with OTLP's own rules on top:

- 64-bit integers (``intValue``, every ``*UnixNano``, counts) are **decimal strings**;
- doubles that are not finite are the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
- ``bytesValue`` is base64 (only trace and span ids are hex, and those are written by the
  signal encoders, not here).

Python values map to ``AnyValue`` by type: ``str`` -> ``stringValue``, ``bool`` -> ``boolValue``,
``int`` -> ``intValue`` (outside int64: its decimal text as ``stringValue``), ``float`` ->
``doubleValue``, mappings -> ``kvlistValue``, lists/tuples/sets -> ``arrayValue``, ``bytes`` ->
``bytesValue``, ``None`` -> an empty ``AnyValue`` (OTel's "null"). NumPy scalars and arrays are
converted with their own ``tolist()`` (NumPy is never imported here); anything else becomes its
``str()``. Nesting deeper than :data:`MAX_DEPTH` is cut to the ``str()`` of the rest.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import orjson

from pontem_async.encoding.jsonl import safe_str

__all__ = ["MAX_DEPTH", "any_value", "attributes", "double", "dumps", "resource"]

MAX_DEPTH = 32
"""Deepest nesting of kvlist/array values written as such (orjson refuses more than 255)."""
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def double(value: float) -> float | str:
    """A double as OTLP/JSON writes it: finite ones as numbers, others as proto3 strings."""
    if value != value:
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return value


def any_value(value: Any, depth: int = 0) -> dict[str, Any]:
    """The ``AnyValue`` JSON object of a Python value (see the module docstring)."""
    cls = value.__class__
    if cls is str:
        return {"stringValue": value}
    if cls is bool:
        return {"boolValue": value}
    if cls is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}
    if cls is float:
        return {"doubleValue": double(value)}
    if value is None:
        return {}
    return _any_value_slow(value, depth)


def _any_value_slow(value: Any, depth: int) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": bool(value)}
    if isinstance(value, str):
        return {"stringValue": str(value)}
    if isinstance(value, int):
        return any_value(int(value), depth)
    if isinstance(value, float):
        return {"doubleValue": double(float(value))}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if depth >= MAX_DEPTH:
        return {"stringValue": safe_str(value)}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": attributes(value, depth + 1)}}
    if isinstance(value, list | tuple | set | frozenset | range):
        return {"arrayValue": {"values": [any_value(item, depth + 1) for item in value]}}
    tolist = getattr(value, "tolist", None)  # NumPy scalars and arrays, without importing NumPy
    if callable(tolist):
        try:
            converted = tolist()
        except Exception:
            return {"stringValue": safe_str(value)}
        if converted is not value:
            return any_value(converted, depth + 1)
    return {"stringValue": safe_str(value)}


def attributes(mapping: Mapping[Any, Any], depth: int = 0) -> list[dict[str, Any]]:
    """A mapping as an OTLP ``KeyValue`` list (keys that are not strings become their text)."""
    out = []
    for key, value in mapping.items():
        cls = value.__class__
        if cls is str:
            encoded: dict[str, Any] = {"stringValue": value}
        elif cls is int and _INT64_MIN <= value <= _INT64_MAX:
            encoded = {"intValue": str(value)}
        else:
            encoded = any_value(value, depth)
        out.append({"key": key if key.__class__ is str else safe_str(key), "value": encoded})
    return out


_RESOURCE_CACHE: dict[int, tuple[Mapping[str, Any], dict[str, Any]]] = {}
_RESOURCE_CACHE_SIZE = 64


def resource(res: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``Resource`` object of a record's resource mapping.

    Records of one telemetry share their resource mapping by reference, so its encoding is
    cached by identity (the cache holds the mapping itself, so an id is never reused while
    cached). The cached object is shared between bodies: callers must not mutate it.
    """
    if not res:
        return {}
    key = id(res)
    hit = _RESOURCE_CACHE.get(key)
    if hit is not None and hit[0] is res:
        return hit[1]
    encoded = {"attributes": attributes(res)}
    if len(_RESOURCE_CACHE) >= _RESOURCE_CACHE_SIZE:
        _RESOURCE_CACHE.clear()
    _RESOURCE_CACHE[key] = (res, encoded)
    return encoded


def dumps(document: Any) -> bytes:
    """``document`` as compact JSON bytes. Strings orjson refuses (lone surrogates) are
    rewritten with backslash escapes on a slow path, so encoding never fails."""
    try:
        return orjson.dumps(document)
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(_scrub(document))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value
