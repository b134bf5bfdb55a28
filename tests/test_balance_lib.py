"""Helpers for the balance/release tests: manifests of real image files, crafted classifiers.

(No tests here; the name keeps it among the balance stage's files.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from fairforge.config import PipelineConfig, validate
from fairforge.manifest import write_manifest
from fairforge.taxonomy import AGE_BINS, FAIRFACE_RACES


def face_like(seed: int, size: int = 96) -> np.ndarray:
    """A sharp, distinct test image: a random low-frequency field plus fine noise."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC)).astype(np.int16)
    return np.clip(base + rng.integers(-25, 25, (size, size, 3)), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def row(id_: str, **fields: Any) -> dict[str, Any]:
    base = {
        "id": id_,
        "path": f"img/{id_}.png",
        "label": 0,
        "method": "diffusion",
        "source": "fairforge-synth",
        "gender": "male",
        "race": "Asian",
        "age": "20-29",
        "face_score": 0.99,
        "generator": "tiny:diffusion",
    }
    base.update(fields)
    return base


def write_set(folder: Path, rows: list[dict[str, Any]], images: dict[str, np.ndarray | bytes]) -> Path:
    """Write the given images (array -> PNG, bytes as they are; rows without one keep their file)
    and the manifest."""
    for r in rows:
        if r["id"] not in images:
            continue
        target = folder / r["path"]
        image = images[r["id"]]
        if isinstance(image, bytes):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image)
        else:
            save_png(image, target)
    return write_manifest(rows, folder / "manifest.parquet")


def make_set(folder: Path, cells: dict[tuple[str, str, str], int], methods: dict[str, int], seed: int = 0) -> Path:
    """`n` images per (cell, method) with distinct content; fakes name their pristine source."""
    rows, images = [], {}
    k = seed * 100_000
    for (g, r, a), n in cells.items():
        for i in range(n):
            pristine = None
            for method, label in methods.items():
                k += 1
                id_ = f"{method}-{g}-{r}-{a}-{seed}-{i}"
                extra = {"src_id": pristine, "dst_id": pristine} if label == 1 else {}
                rows.append(row(id_, method=method, label=label, gender=g, race=r, age=a, **extra))
                images[id_] = face_like(k)
                if label == 0:
                    pristine = id_
    return write_set(folder, rows, images)


def blurred(array: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(array).filter(ImageFilter.GaussianBlur(6)))


def zoomed(array: np.ndarray) -> np.ndarray:
    """The same content cropped 10% and resized back: same 'face', different perceptual hash."""
    h, w = array.shape[:2]
    m = h // 18
    return np.asarray(Image.fromarray(array[m : h - m, m : w - m]).resize((w, h)))


def fairface_state(
    race: dict[str, float] | None = None,
    gender: dict[str, float] | None = None,
    age: dict[str, float] | None = None,
    arch: str = "resnet18",
    seed: int = 0,
) -> dict[str, Any]:
    """A FairFace-layout state dict whose fc ignores the image: logits = the given biases.

    Labels are given by NAME and placed at FairFace's indices, so a test can check that the
    loader maps them back by name.
    """
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=18)
    bias = torch.full((18,), -10.0)
    for names, offset, values in ((FAIRFACE_RACES, 0, race), (("Male", "Female"), 7, gender), (AGE_BINS, 9, age)):
        for name, value in (values or {names[0]: 5.0}).items():
            bias[offset + names.index(name)] = value
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(bias)
    return model.state_dict()


def config(**balance: Any) -> PipelineConfig:
    """A pipeline config for tests: the tiny FairFace classifier (needs the `tiny_cache` fixture),
    small batches, no workers, the given `balance:` keys."""
    base: dict[str, Any] = {
        "classifiers": [{"path": "tiny:fairface", "arch": "resnet18", "image_size": 64}],
        "num_workers": 0,
        "batch_size": 8,
        "verify": {"match": []},
    }
    base.update(balance)
    return validate(PipelineConfig, {"balance": base})
