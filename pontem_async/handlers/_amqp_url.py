"""AMQP URLs: validated once, and shown only with the password masked.

The broker URL is the one place a RabbitMQ password lives, so every text built from it (log
lines, reprs, exceptions, ``check-config``) goes through :func:`mask_url` or
:func:`pontem_async._redact.redact_text`. Exceptions raised by aio-pika/aiormq may quote the URL
too; :func:`describe_error` masks them before they reach a log line. (aio-pika and aiormq mask
the password in their own log lines; ``tests/test_rabbitmq_handler.py`` checks that at DEBUG.)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pontem_async._redact import REDACTED, redact_text

__all__ = ["check_amqp_url", "describe_error", "mask_url"]

_SCHEMES = ("amqp", "amqps")


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: ``amqp://guest:***@host/``."""
    return redact_text(url)


def check_amqp_url(url: object, *, argument: str = "url") -> str:
    """Return ``url`` when it is an ``amqp://`` or ``amqps://`` URL with a host.

    Raises:
        TypeError, ValueError: starting with ``argument``; the URL is shown masked.
    """
    if not isinstance(url, str):
        raise TypeError(f"{argument}: expected an amqp:// URL string, got {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # validates the port
    except ValueError as exc:
        raise ValueError(f"{argument}: not a valid URL ({exc}): {mask_url(url)!r}") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ValueError(f"{argument}: expected an amqp:// URL, got {mask_url(url)!r}")
    if not parts.hostname:
        raise ValueError(f"{argument}: the URL names no host: {mask_url(url)!r}")
    del port
    return url.strip()


def describe_error(exc: BaseException, url: str) -> str:
    """``Type: message`` of a connection error, with the URL and its password masked (aiormq
    sometimes puts the whole URL, credentials included, into its exception messages)."""
    text = f"{type(exc).__name__}: {exc}"
    password = urlsplit(url).password
    if password and len(password) >= 3:  # shorter ones would garble every word they occur in
        text = text.replace(password, REDACTED)
    return redact_text(text)
