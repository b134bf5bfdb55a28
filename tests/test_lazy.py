"""Package exports that load on first use: a stage package imports nothing heavy until asked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fairforge.lazy import lazy_getattr


def test_a_name_loads_from_its_home_and_is_cached() -> None:
    getattr_ = lazy_getattr("fairforge", {"Registry": "registry"})
    from fairforge.registry import Registry

    assert getattr_("Registry") is Registry
    import fairforge

    assert fairforge.__dict__["Registry"] is Registry
    del fairforge.Registry


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'fairforge' has no attribute 'nope'"):
        lazy_getattr("fairforge", {})("nope")


def test_stage_packages_import_without_torch_or_pandas() -> None:
    code = (
        "import sys, fairforge.balance, fairforge.generate, fairforge.importers;"
        "print(sorted(m for m in ('torch', 'pandas', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
