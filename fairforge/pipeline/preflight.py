"""Before any work: every local file the config names must exist, reported in ONE list with where to get it.

Why: a full run takes hours on GPUs; discovering in stage 4 that the FairFace checkpoint is missing
wastes all of it. The check walks the whole config for values that name local files (by key name
and by shape: an absolute or ./ path, or a weights/table file extension), collects the missing ones
with a hint for each known piece, and raises one `MissingModelError`. Hub ids are listed as
downloads the run will make (nothing can be checked offline about them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fairforge.errors import MissingModelError

log = logging.getLogger(__name__)

PATH_KEYS = ("path", "file", "root", "checkpoint", "csv", "json", "images_root", "model_file", "pack")
FILE_SUFFIXES = (".onnx", ".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".csv", ".json", ".jsonl", ".dat", ".zip")

#: substring of a missing path -> where a user gets it
WHERE_TO_GET: dict[str, str] = {
    "inswapper": "insightface's inswapper_128.onnx (non-commercial research licence); the user supplies it, "
    "fairforge never downloads it; pin its sha256 in the config",
    "buffalo": "insightface's buffalo_l model pack (non-commercial): unzip into <root>/models/buffalo_l",
    "fair": "the FairFace checkpoint res34_fair_align_multi_7_20190809.pt from github.com/dchen236/FairFace",
    "shape_predictor": "dlib's 68-point predictor; `pip install face-recognition-models` ships it",
    ".csv": "the PG-FDD/DAW-FDD demographic annotation CSVs (github.com/Purdue-M2/Fairness-Generalization) "
    "and the dataset's frames (FF++, Celeb-DF, DFDC, DFD: request access from their authors)",
    ".json": "DeepfakeBench's dataset JSON (github.com/SCLBD/DeepfakeBench, preprocessing/rearrange.py)",
}


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _looks_local(key: str, value: str) -> bool:
    if value.startswith(("tiny", "hf-hub:", "timm/", "http://", "https://")):
        return False
    last = key.rsplit(".", 1)[-1].split("[", 1)[0]
    explicit = value.startswith(("/", "./", "../", "~")) or value.lower().endswith(FILE_SUFFIXES)
    return explicit or (last in PATH_KEYS and (os.sep in value or "." in value))


def _hint(value: str) -> str:
    low = value.lower()
    for needle, where in WHERE_TO_GET.items():
        if needle in low:
            return where
    return "a local file or folder the config names"


def missing_pieces(
    config: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    skip_prefixes: tuple[str, ...] = ("train.output_dir", "cache_dir"),
) -> list[str]:
    """One line per missing local file: `key.path: PATH is missing (where to get it)`.

    Values equal to the config model's defaults are not checked: a default location (e.g.
    insightface's `~/.insightface`) matters only to a backend the config selects, and a preset
    that selects it names the path explicitly.
    """
    default_values = dict(_walk(defaults)) if defaults else {}
    lines = []
    for key, value in _walk(config):
        if not isinstance(value, str) or not value or key.startswith(skip_prefixes):
            continue
        if default_values.get(key) == value:
            continue
        if _looks_local(key, value) and not Path(os.path.expanduser(value)).exists():
            lines.append(f"{key}: {value} is missing ({_hint(value)})")
    return lines


def check_required(ctx: Any) -> None:
    """Raise one `MissingModelError` listing every missing piece of the run's config."""
    config = ctx.cfg.model_dump(mode="json", by_alias=True)
    missing = missing_pieces(config, type(ctx.cfg)().model_dump(mode="json", by_alias=True))
    if missing:
        listing = "\n  - ".join(missing)
        raise MissingModelError(
            f"preset {ctx.preset!r} needs {len(missing)} file(s) that are not there:\n  - {listing}\n"
            "See README 'What a real run needs'. The tiny preset needs none of them."
        )
