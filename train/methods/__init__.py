"""The registry of training methods: `method:` in the config names one of these.

A method module in this folder registers itself with `@register_method("name")`; `get_method`
imports every module of the folder first, so adding a method is adding a file, with no list to
edit. See `base.py` for the contract, `erm.py` and `ddfg.py` for two complete examples.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from fairforge.errors import ConfigError

from .base import DataInfo, LossFn, Method, StepContext, StepLogs

_REGISTRY: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make `name` usable as `method: name` in a config."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method {name!r} is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def available_methods() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_method(name: str) -> Method:
    """A fresh instance of the method registered as `name`; an unknown name is a `ConfigError`."""
    _import_all()
    if name not in _REGISTRY:
        raise ConfigError(f"method: unknown method {name!r}; expected one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]()


__all__ = [
    "DataInfo",
    "LossFn",
    "Method",
    "StepContext",
    "StepLogs",
    "available_methods",
    "get_method",
    "register_method",
]
