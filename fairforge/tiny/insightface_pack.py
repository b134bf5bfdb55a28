"""A tiny insightface model pack laid out like buffalo_l: `ROOT/models/buffalo_tiny/*.onnx`.

`FaceAnalysis(name, root)` globs the pack's ONNX files and lets insightface's own model router
decide what each one is (SCRFD detector, 68-point 3D and 106-point 2D `Landmark`, ArcFace), so the
insightface backend, its `allowed_modules` and provider checks run in the tests exactly as on the
real pack. The file names are buffalo_l's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import register_tiny
from .onnx_models import build_tiny_arcface, write_tiny_landmark, write_tiny_scrfd

PACK_NAME = "buffalo_tiny"


@register_tiny("insightface", version=1)
def build_tiny_insightface(folder: Path) -> Path:
    """The pack root (what `generate.detector.insightface.root` names); the pack is models/buffalo_tiny."""
    pack = folder / "models" / PACK_NAME
    pack.mkdir(parents=True)
    write_tiny_scrfd(pack / "det_10g.onnx")
    write_tiny_landmark(pack / "1k3d68.onnx", points=68, dims=3, seed=3)
    write_tiny_landmark(pack / "2d106det.onnx", points=106, dims=2, seed=4)
    arcface = build_tiny_arcface(folder)
    shutil.move(str(arcface), pack / "w600k_r50.onnx")
    return folder
