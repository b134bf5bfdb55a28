"""Package layout: the stage folders live at the top level but install under `fairforge.`.

Why a setup.py: `[tool.setuptools.packages.find]` cannot rename folders, and listing every
subpackage by hand in pyproject.toml goes stale. This maps `generate/` -> `fairforge.generate`
(and so on) and finds their subpackages, so nothing installs as a top-level `evaluate` that would
shadow Hugging Face's `evaluate`. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

STAGES = ("generate", "balance", "train", "evaluate")

packages = find_packages(include=["fairforge", "fairforge.*"])
package_dir = {"fairforge": "fairforge"}
for stage in STAGES:
    packages.append(f"fairforge.{stage}")
    package_dir[f"fairforge.{stage}"] = stage
    # namespace discovery also lists data folders (train/configs), which then ship with their YAML
    packages += [f"fairforge.{stage}.{sub}" for sub in find_namespace_packages(stage, exclude=["*__pycache__*"])]

setup(packages=packages, package_dir=package_dir)
