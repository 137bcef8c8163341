"""Redaction of credentials in configuration shown to people (``check-config``, error messages).

Three rules, applied together so a secret is hidden however it was spelled:

- a value under a key that looks like a credential (``password``, ``passwd``, ``secret``,
  ``token``, ``api_key``/``apikey``, ``auth``/``authorization``, ``credentials``; case and
  ``-``/``_`` do not matter) or under one of a handler's declared ``secret_fields``;
- every value of a ``headers`` mapping (authorization headers come in many spellings);
- the password of a URL anywhere in a string: ``amqp://user:pass@host/`` becomes
  ``amqp://user:***@host/``.

``None`` stays ``None``: "no password configured" is not a secret, and it helps debugging.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "jsonable", "redact", "redact_text", "show"]

REDACTED = "***"

_SECRET_KEY = re.compile(r"passw(or)?d|secret|token|api_?key|auth|credential", re.IGNORECASE)
# scheme://user:password@  -- the password may hold '@' (greedy up to the last '@' before '/').
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s:@]*):[^/?#\s]*@")


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential."""
    return isinstance(key, str) and _SECRET_KEY.search(key.replace("-", "_")) is not None


def redact_text(text: str) -> str:
    """Hide the passwords of URLs inside ``text``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)


def show(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: URL passwords hidden, long values shortened."""
    text = redact_text(repr(value))
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def redact(value: Any, secret_fields: Collection[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like data) with credentials replaced by ``"***"``.

    ``secret_fields`` are extra keys to hide at the top level of ``value``.
    """
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if item is not None and (key in secret_fields or is_secret_key(key)):
                out[key] = REDACTED
            elif isinstance(key, str) and key.lower() == "headers" and isinstance(item, Mapping):
                out[key] = {k: (None if v is None else REDACTED) for k, v in item.items()}
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def jsonable(value: Any) -> Any:
    """``value`` made of JSON types only: containers kept, anything else shown as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    qualname = getattr(value, "__qualname__", None)  # functions and classes: dotted path
    if isinstance(qualname, str) and callable(value):
        return f"{getattr(value, '__module__', '?')}.{qualname}"
    name = getattr(value, "name", None)  # streams: '<stderr>'
    if isinstance(name, str):
        return name
    return repr(value)
