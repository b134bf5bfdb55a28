"""The wheel installs every stage under `fairforge.` and nothing at the top level (no `evaluate`)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_maps_stage_folders_under_the_fairforge_namespace(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(REPO),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fairforge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"fairforge", wheel.name.split("-py3")[0] + ".dist-info"}, top
    for stage in ("generate", "balance", "train", "evaluate"):
        assert f"fairforge/{stage}/__init__.py" in names
    assert "fairforge/train/configs/tiny.yaml" in names and "fairforge/train/methods/__init__.py" in names
    # installed from the wheel, outside the repository, every subpackage imports
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import fairforge.generate, fairforge.balance, fairforge.train.methods, fairforge.evaluate, fairforge.pipeline"
    )
    code += "; import importlib.util as u; assert u.find_spec('evaluate') is None or 'fairforge' not in u.find_spec('evaluate').origin"
    code += f"; assert fairforge.train.__file__.startswith({str(target)!r}), fairforge.train.__file__"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""}, check=True)
