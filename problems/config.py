"""Typed settings: build a dataclass from a mapping, refusing unknown keys and mistyped values with one
line (:class:`common.errors.ConfigError`) that names the key.

Types understood: ``int`` (not ``bool``), ``float`` (an ``int`` is accepted), ``str``, ``bool``,
``None``, ``Optional``/``Union`` of these, ``Literal[...]`` and ``tuple[int, ...]`` /
``tuple[int, int, int]`` (a list is accepted: presets pass through JSON).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

from common.errors import ConfigError

__all__ = ["build", "field_names", "matches"]


def field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def matches(hint, value) -> bool:
    """Whether ``value`` is of the type ``hint`` (the subset of typing listed in the module docstring)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(matches(a, value) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(args[0], v) for v in value)
        return len(value) == len(args) and all(matches(a, v) for a, v in zip(args, value))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def build(cls, values: Mapping[str, Any], where: str):
    """``cls(**values)`` after checking every key is a field of ``cls`` and every value its type;
    ConfigError naming ``where`` and the key otherwise (also for a required field left out)."""
    names = field_names(cls)
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(names)})")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if not matches(hints[key], value):
            raise ConfigError(f"{where}: setting '{key}' must be {_describe(hints[key])}, got {value!r}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: setting '{missing[0]}' is required")
    return cls(**values)
