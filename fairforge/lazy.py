"""Package exports that load on first use.

Why: `fairforge --help` imports every stage's CLI module and with it the stage packages; a
package `__init__` that imported its modules eagerly would pull in torch, OpenCV and pandas just
to print a help text. A package lists where each public name lives and gets a module
`__getattr__` (PEP 562) that imports the home module when the name is first read:

    _EXPORTS = {"run_balance": "run", "BACKENDS": "backends"}
    __getattr__ = lazy_getattr(__name__, _EXPORTS)
    __all__ = sorted(_EXPORTS)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`.

    `homes` maps each public name to the submodule that defines it (relative to `package`, with
    or without a leading dot). A name read once is cached in the package's namespace.
    """
    table = {name: "." + home.lstrip(".") for name, home in homes.items()}

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__all__ = ["lazy_getattr"]
