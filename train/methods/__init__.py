"""The training methods: `method:` in a config names one of `METHODS`, its settings one of `METHOD_CONFIGS`.

A method is three files, none of them a list to edit:

* `<name>.py` holds the method (`@register_method("<name>")` on a `Method` subclass; the contract is
  in `base.py`, `erm.py` and `ddfg.py` are two complete examples);
* `<name>_config.py` holds its settings, the `<name>:` section of a train config
  (`@register_config("<name>")` on a `StrictModel`; a method without settings registers an empty
  one). It imports no torch, so validating a config (`fairforge train --config`, the pipeline's
  checks) stays fast: the config schema takes the valid method names and their sections from
  `METHOD_CONFIGS`;
* `train/configs/<name>.yaml` ships its published recipe.

Both registries find their entries by importing the modules of this folder on the first lookup
(`METHOD_CONFIGS` only the `*_config` ones), so a method defined anywhere else, a test module
included, takes part as soon as it registers itself.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fairforge.registry import Registry

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .base import Method

#: method name -> its `Method` class
METHODS: Registry[type[Method]] = Registry("method", discover=__name__)
#: method name -> the pydantic model of its config section (importing these modules imports no torch)
METHOD_CONFIGS: Registry[type[BaseModel]] = Registry(
    "method", discover=[f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name.endswith("_config")]
)


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make `name` usable as `method: name` (its settings: `register_config`)."""

    def wrap(cls: type[Method]) -> type[Method]:
        METHODS.register(name, cls)
        cls.name = name
        return cls

    return wrap


def register_config(name: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: the settings model of method `name`, validated as the config's `name:` section."""
    return METHOD_CONFIGS.register(name)


def get_method(name: str) -> Method:
    """A fresh instance of the method registered as `name`; an unknown name is a `ConfigError`."""
    return METHODS.get(name, key="method")()


def available_methods() -> list[str]:
    return METHODS.names()


__all__ = ["METHODS", "METHOD_CONFIGS", "available_methods", "get_method", "register_config", "register_method"]
