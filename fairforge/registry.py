"""One registry type for every pluggable part: methods, updates, backbones, generators, filters...

Modelled on timm's `_registry.py`: an entry registers itself with a decorator where it is
defined, and the registry is asked by name. A registry may name the modules that hold its
entries (`discover`): they are imported on the first lookup, so a new entry is a new module and
no list anywhere is edited. A duplicate name is refused, because two entries silently shadowing
each other is the bug that a registry exists to prevent.

    METHODS = Registry("method", discover="fairforge.train.methods")

    @METHODS.register("erm")
    class ERM(Method): ...

    METHODS.get("erm")        # the class
    METHODS.names()           # ['dag_fdd', 'ddfg', 'erm', ...]
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fairforge.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, filled by `@registry.register(name)`.

    `kind` names the registry in messages (`unknown method 'x'; expected one of [...]`).
    `discover` is a package (every module in it is imported) or a list of modules, imported once
    before the first lookup so that entries defined there are present.
    """

    def __init__(self, kind: str, discover: str | list[str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._discover = [discover] if isinstance(discover, str) else list(discover or [])
        self._discovered = False

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T]:
        """Decorator (or direct call with `entry`) that adds `entry` under `name`.

        Registering a different object under a taken name raises `ValueError`; registering the
        same object again (a module imported twice under one name) is a no-op.
        """

        def add(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not obj:
                where = getattr(existing, "__module__", type(existing).__module__)
                raise ValueError(f"{self.kind} {name!r} is registered twice (first in {where})")
            self._entries[name] = obj
            return obj

        if entry is not None:
            return add(entry)  # type: ignore[return-value]
        return add

    def unregister(self, name: str) -> None:
        """Remove `name` (no error if absent): for entries registered for a while, such as a test's."""
        self._entries.pop(name, None)

    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for target in self._discover:
            module = importlib.import_module(target)
            path = getattr(module, "__path__", None)
            if path is None:
                continue
            for info in pkgutil.iter_modules(path):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{target}.{info.name}")

    def get(self, name: str, *, key: str | None = None) -> T:
        """The entry registered as `name`; an unknown name is a `ConfigError` naming the choices.

        `key` is the config key path the name came from, put in front of the message.
        """
        self._ensure_discovered()
        if name not in self._entries:
            where = f"{key}: " if key else ""
            raise ConfigError(f"{where}unknown {self.kind} {name!r}; expected one of {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._ensure_discovered()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_discovered()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._ensure_discovered()
        return name in self._entries

    def __len__(self) -> int:
        self._ensure_discovered()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


__all__ = ["Registry"]
