"""Series records to JSON: the ``series`` JSONL line, columns not rows.

Runs on the pipeline's consumer task, never on the caller. A NumPy values column is serialized
by orjson in C (``OPT_SERIALIZE_NUMPY``, no Python object per element) and put in the line as an
``orjson.Fragment`` (already-serialized JSON, copied as is when the line is written), because
that lets the serialized bytes answer the one question left — is there a NaN or an infinity? —
with a ``memchr``: orjson writes those as ``null``, and a JSON array of numbers has no other
``n``. Only such a column is rewritten element by element, with ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` as everywhere in the JSONL format. (A vectorized ``isfinite(...).all()`` costs
more than serializing 100 floats.)

orjson serializes only C-contiguous, native-endian arrays of some dtypes; anything else raises
and is converted first, then serialized again:

- non-contiguous or byte-swapped arrays are copied into native C order (the caller's copy is
  already contiguous; this covers records built by hand);
- ``float16`` (which older orjson versions refuse) is widened to ``float32`` and ``longdouble``
  narrowed to ``float64`` (every float16 is exactly a float32, so a reader casting back to
  float16 gets the same numbers).

List columns get the same NaN treatment (a ``sum`` of the column tells whether any element is
non-finite, in C), and ``range`` steps become lists.

Line shape (SCHEMA.md, ``schemas/series.json``): ``kind``, ``timestamp``, ``timeUnixNano``,
``name``, ``unit``, ``scale``, ``labels``, ``values``, ``steps``, optional ``timestamps``,
``resource``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import orjson

from pontem_async.encoding.jsonl import register_kind
from pontem_async.records import SeriesRecord

__all__ = ["int_column", "series_to_dict", "value_column"]

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_Fragment: Any = getattr(orjson, "Fragment", None)  # orjson >= 3.9


def _finite(value: Any) -> Any:
    if value != value:
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return value


def _native(array: Any, np: Any) -> Any:
    """``array`` in a layout and dtype orjson serializes."""
    dtype = array.dtype
    if dtype.kind == "f":
        if dtype.itemsize == 2:
            array = array.astype(np.float32)
        elif dtype.itemsize > 8:
            array = array.astype(np.float64)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return array


def value_column(values: Any) -> Any:
    """A values column ready for orjson: an ``orjson.Fragment`` of a NumPy array, or a list or
    tuple, with non-finite floats spelled as strings."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(values, np.ndarray):
        return _array_column(values, np)
    if values.__class__ is range:
        return list(values)
    try:
        total = sum(values)
    except TypeError:  # not numbers: a record built by hand; let the line's fallback cope
        return values
    if total - total == 0:  # finite, so no element is NaN or infinite
        return values
    return [_finite(v) for v in values]


def _array_column(values: Any, np: Any) -> Any:
    if _Fragment is None:  # an orjson without Fragment: hand the array over, checked
        array = _native(values, np)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return [_finite(v) for v in array.tolist()]
        return array
    try:
        raw = orjson.dumps(values, option=_NUMPY)
    except orjson.JSONEncodeError:  # a layout or dtype orjson does not take
        values = _native(values, np)
        raw = orjson.dumps(values, option=_NUMPY)
    if b"n" in raw:  # null: a NaN or an infinity
        return [_finite(v) for v in values.tolist()]
    return _Fragment(raw)


def int_column(column: Any) -> Any:
    """A steps or timestamps column ready for orjson."""
    if column.__class__ is range:
        return list(column)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(column, np.ndarray):
        return _native(column, np)
    return column


def series_to_dict(record: SeriesRecord) -> dict[str, Any]:
    """The JSON object of one series line."""
    ts = record[0]
    timestamps = record[4]
    resource = record[7]
    line: dict[str, Any] = {
        "kind": "series",
        "timestamp": ts / 1e9,
        "timeUnixNano": ts,
        "name": record[1],
        "unit": record[6],
        "scale": record[8] if len(record) > 8 else "step",
        "labels": record[5],
        "values": value_column(record[2]),
        "steps": int_column(record[3]),
    }
    if timestamps is not None:
        line["timestamps"] = int_column(timestamps)
    line["resource"] = resource if resource is not None else {}
    return line


register_kind("series", series_to_dict)
