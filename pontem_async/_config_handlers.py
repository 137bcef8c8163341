"""The ``handlers`` section of ``dict_config``: one entry per handler, checked before any is built.

For each ``handlers.<name>`` entry:

1. ``class`` is imported by dotted path and must be a concrete :class:`Handler` subclass;
2. the other keys are checked against the constructor's signature (followed through ``**kwargs``
   up the class hierarchy), so a typo is reported with its key path and a suggestion;
3. ``ext://module.attr`` strings, anywhere in the options (nested dicts and lists included),
   become the imported object (``ext://sys.stderr``); ``filter`` must be one, naming a callable;
4. the class's ``env_overrides`` apply, through :func:`pontem_async.settings.resolve`: the
   keyword argument named after the variable (``otlp_endpoint`` for ``PONTEM_OTLP_ENDPOINT``)
   beats the variable, which beats the file;
5. :meth:`HandlerSpec.build` calls the constructor; a ``ValueError``/``TypeError`` whose message
   starts with ``"<argument>: "`` becomes a ``ConfigError`` at ``handlers.<name>.<argument>``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pontem_async import settings
from pontem_async._redact import REDACTED, is_secret_key, redact_text, show
from pontem_async.errors import ConfigError
from pontem_async.handlers.base import Handler

__all__ = [
    "EXT_PREFIX",
    "HandlerSpec",
    "argument_name",
    "did_you_mean",
    "import_dotted",
    "parse_handlers",
    "resolve_ext",
]

EXT_PREFIX = "ext://"
_BASE_OPTIONS = ("kinds", "level", "filter")
_ARGUMENT_MESSAGE = re.compile(r"([A-Za-z_]\w*): (.*)", re.DOTALL)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def argument_name(env_var: str) -> str:
    """The keyword argument that overrides an environment variable: ``PONTEM_AMQP_URL`` ->
    ``amqp_url`` (argument > environment > file > default)."""
    name = env_var.lower()
    return name[len("pontem_") :] if name.startswith("pontem_") else name


def import_dotted(path: str) -> Any:
    """Import ``package.module.attr`` (attributes may be nested: ``mod.Class.attr``).

    The longest importable module prefix is imported and the rest looked up as attributes, so a
    package attribute that shadows a submodule of the same name (``pontem_async.profiler`` is
    both a module and, on the package, the default Profiler) does not hide the module.
    """
    parts = path.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ImportError(f"{path!r} is not a dotted path (module.attribute)")
    obj: Any = importlib.import_module(parts[0])
    index = 1
    for end in range(len(parts), 1, -1):
        name = ".".join(parts[:end])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not name.startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
            continue
        index = end
        break
    for position in range(index, len(parts)):
        part = parts[position]
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = ".".join(parts[:position])
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise AttributeError(
                f"{owner!r} has no attribute {part!r}{did_you_mean(part, names)}"
            ) from None
    return obj


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact_text(str(exc))}"


def resolve_ext(value: Any, key_path: str) -> Any:
    """``value`` with every ``ext://dotted.path`` string replaced by the imported object."""
    if isinstance(value, str):
        if not value.startswith(EXT_PREFIX):  # a prefix, not lstrip's set of characters
            return value
        target = value[len(EXT_PREFIX) :]
        try:
            return import_dotted(target)
        except Exception as exc:
            raise ConfigError(key_path, f"cannot resolve {value!r}: {_failure(exc)}") from None
    if isinstance(value, Mapping):
        return {k: resolve_ext(v, f"{key_path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [resolve_ext(v, f"{key_path}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


@dataclass(frozen=True)
class _Signature:
    params: Mapping[str, inspect.Parameter]
    required: tuple[str, ...]
    open: bool  # takes keywords it does not name (a **kwargs that goes nowhere we can see)


def _signature(cls: type[Handler]) -> _Signature:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the hierarchy."""
    params: dict[str, inspect.Parameter] = {}
    required: list[str] = []
    first = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return _Signature(params, tuple(required), False)
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return _Signature(params, tuple(required), True)
        var_keyword = False
        for param in list(sig.parameters.values())[1:]:  # skip self
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = True
            elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                params.setdefault(param.name, param)
                if first and param.default is param.empty and param.name != "name":
                    required.append(param.name)
        first = False
        if not var_keyword:
            return _Signature(params, tuple(required), False)
    return _Signature(params, tuple(required), True)


@dataclass(frozen=True)
class HandlerSpec:
    """One validated ``handlers.<name>`` entry, ready to build.

    Attributes:
        written: the options as written (``ext://`` kept), after argument/environment overrides.
        kwargs: the constructor's keyword arguments (``ext://`` resolved).
        defaults: constructor defaults of the options not given (shown by ``check-config``).
    """

    name: str
    class_path: str
    cls: type[Handler]
    written: Mapping[str, Any] = field(repr=False)  # may hold credentials: never in a repr
    kwargs: Mapping[str, Any] = field(repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict, repr=False)
    pass_name: bool = True

    @property
    def key_path(self) -> str:
        return f"handlers.{self.name}"

    def build(self) -> Handler:
        """Construct the handler (not opened). Raises ConfigError with the option's key path."""
        kwargs = dict(self.kwargs)
        if self.pass_name:
            kwargs["name"] = self.name
        try:
            handler = self.cls(**kwargs)
        except (ValueError, TypeError) as exc:
            raise self._constructor_error(exc) from None
        except Exception as exc:
            message = self._hide_secrets(_failure(exc))
            raise ConfigError(self.key_path, f"{self.cls.__name__}() failed: {message}") from None
        if handler.name != self.name:
            handler.name = self.name
        return handler

    def _constructor_error(self, exc: Exception) -> ConfigError:
        if isinstance(exc, ConfigError):
            argument, message = exc.key_path, exc.reason
        else:
            match = _ARGUMENT_MESSAGE.match(str(exc))
            argument, message = (match[1], match[2]) if match else ("", str(exc))
        known = argument in self.kwargs or argument in self.defaults or argument in _BASE_OPTIONS
        if argument and known:
            return ConfigError(f"{self.key_path}.{argument}", self._hide_secrets(message))
        return ConfigError(self.key_path, f"{self.cls.__name__}: {self._hide_secrets(str(exc))}")

    def _hide_secrets(self, message: str) -> str:
        """``message`` without URL passwords nor the values of credential options (a
        constructor's ``got {value!r}`` must not print a password)."""
        secrets: list[str] = []
        for key, value in self.kwargs.items():
            if key.lower() == "headers" and isinstance(value, Mapping):
                secrets.extend(v for v in value.values() if isinstance(v, str))
            elif key in self.cls.secret_fields or is_secret_key(key):
                secrets.extend(v for v in (value,) if isinstance(v, str))
        for secret in sorted(filter(None, set(secrets)), key=len, reverse=True):
            message = message.replace(secret, REDACTED)
        return redact_text(message)


def _import_class(path: str, key_path: str) -> type[Handler]:
    if not isinstance(path, str):
        raise ConfigError(key_path, f"expected a dotted path to a Handler class, got {show(path)}")
    try:
        cls = import_dotted(path)
    except Exception as exc:
        raise ConfigError(key_path, f"cannot import {path!r}: {_failure(exc)}") from None
    if not (isinstance(cls, type) and issubclass(cls, Handler)):
        raise ConfigError(
            key_path, f"{path!r} is not a pontem_async.handlers.Handler subclass (got {cls!r})"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConfigError(key_path, f"{path!r} is abstract (does not implement: {missing})")
    return cls


def _filter(raw: Any, key_path: str) -> Any:
    if raw is None or (callable(raw) and not isinstance(raw, str)):
        return raw
    if not (isinstance(raw, str) and raw.startswith(EXT_PREFIX)):
        raise ConfigError(key_path, f"expected an ext:// reference to a callable, got {show(raw)}")
    resolved = resolve_ext(raw, key_path)
    if not callable(resolved):
        raise ConfigError(key_path, f"{raw!r} is not callable (a {type(resolved).__name__})")
    return resolved


def _parse_one(
    name: str, entry: Mapping[str, Any], arguments: Mapping[str, Any], used: set[str]
) -> HandlerSpec:
    path = f"handlers.{name}"
    for key in entry:
        if not isinstance(key, str):
            raise ConfigError(path, f"option names must be strings, got {key!r}")
    if entry.get("class") is None:
        raise ConfigError(f"{path}.class", "required: the dotted path of a Handler subclass")
    class_path = entry["class"]
    cls = _import_class(class_path, f"{path}.class")
    sig = _signature(cls)
    options = {k: v for k, v in entry.items() if k != "class"}
    if "name" in options:
        raise ConfigError(f"{path}.name", "not an option: a handler's name is its key in handlers")
    accepted = sorted({*sig.params, *_BASE_OPTIONS} - {"name"})
    if not sig.open:
        for key in options:
            if key not in accepted:
                raise ConfigError(
                    f"{path}.{key}",
                    f"unknown option for {cls.__name__}; expected one of "
                    f"{', '.join(['class', *accepted])}{did_you_mean(key, accepted)}",
                )
    written = dict(options)
    kwargs = {
        k: (_filter(v, f"{path}.{k}") if k == "filter" else resolve_ext(v, f"{path}.{k}"))
        for k, v in options.items()
    }
    for option, env_var in cls.env_overrides.items():
        argument = argument_name(env_var)
        used.add(argument)
        file_value = options.get(option, settings.UNSET)
        value = settings.resolve(arguments.get(argument), env_var, file_value, settings.UNSET)
        if value is not settings.UNSET and value is not file_value:
            written[option] = kwargs[option] = value
    for option in sig.required:
        if option not in kwargs:
            raise ConfigError(f"{path}.{option}", f"required option missing for {cls.__name__}")
    defaults = {
        k: p.default
        for k, p in sig.params.items()
        if k not in kwargs and k != "name" and p.default is not p.empty
    }
    return HandlerSpec(
        name, class_path, cls, written, kwargs, defaults, "name" in sig.params or sig.open
    )


def parse_handlers(
    section: Any, arguments: Mapping[str, Any], used: set[str]
) -> tuple[HandlerSpec, ...]:
    """Validate the ``handlers`` mapping; names of the keyword arguments consulted go to
    ``used``."""
    if not isinstance(section, Mapping):
        raise ConfigError(
            "handlers", f"expected a mapping of handler name to settings, got {show(section)}"
        )
    specs = []
    for name, entry in section.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("handlers", f"handler names must be non-empty strings, got {name!r}")
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"handlers.{name}", f"expected a mapping with at least 'class', got {show(entry)}"
            )
        specs.append(_parse_one(name, entry, arguments, used))
    return tuple(specs)
