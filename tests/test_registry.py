"""The one registry type: register, get with the choices named, duplicates refused, discovery."""

from __future__ import annotations

import pytest

from fairforge.errors import ConfigError
from fairforge.registry import Registry


def test_register_and_get() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A
    assert reg.names() == ["a"]
    assert "a" in reg and "b" not in reg


def test_unknown_name_lists_the_choices_and_key() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("one", 1)
    with pytest.raises(ConfigError, match=r"train\.widget: unknown widget 'two'; expected one of \['one'\]"):
        reg.get("two", key="train.widget")


def test_duplicate_name_is_refused() -> None:
    reg: Registry[object] = Registry("widget")
    first, second = object(), object()
    reg.register("x", first)
    reg.register("x", first)  # the same object again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="widget 'x' is registered twice"):
        reg.register("x", second)


def test_discovery_imports_every_module_of_a_package() -> None:
    reg: Registry[object] = Registry("importer-format", discover="fairforge.importers")
    assert len(reg) == 0  # importing the package's modules registered nothing into this registry
    assert reg.names() == []


def test_unregister_removes_an_entry() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("one", 1)
    reg.unregister("one")
    reg.unregister("one")  # absent: no error
    assert reg.names() == []
    reg.register("one", 2)  # the name is free again
    assert reg.get("one") == 2
