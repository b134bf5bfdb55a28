"""Swaps and blends, made from pristine faces on disk.

Fakes read their faces from files, never from memory, so a fake made on another rank, after a
restart or by `regenerate` sees exactly the same pixels and landmarks. The pristine pool is either
this folder's diffusion faces (their aligned crops, lossless copies when the set is JPEG, and the
landmarks stored in their manifest rows) or the real faces of an imported manifest (detected,
aligned and cropped here, the same way).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fairforge.config.generate import GenerateConfig

from .align import transform_points
from .output import decode, full_path, lossless_path
from .pristine import Renderer
from .rows import landmarks_of
from .sbi import self_blend


class FakeError(Exception):
    """A fake cannot be made (its face is missing or has no landmarks); the reason is recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class PristineFace:
    crop: np.ndarray
    landmarks: np.ndarray
    row: Mapping[str, Any]

    @property
    def identity(self) -> str:
        value = self.row.get("identity")
        return value if isinstance(value, str) and value else str(self.row["id"])


class FaceSource:
    """Pristine faces by id, read from the folder (diffusion pool) or from a real manifest."""

    def __init__(self, out: Path, rows: pd.DataFrame, renderer: Renderer, real: bool, cache_size: int = 256) -> None:
        self.out = out
        self.rows = {r["id"]: r for r in rows.to_dict("records")}
        self.root = Path(rows.attrs.get("root", out))
        self.renderer = renderer
        self.real = real
        self._cache: OrderedDict[str, PristineFace] = OrderedDict()
        self.cache_size = cache_size

    def has(self, id_: str) -> bool:
        return id_ in self.rows

    def get(self, id_: str) -> PristineFace:
        if id_ in self._cache:
            self._cache.move_to_end(id_)
            return self._cache[id_]
        if id_ not in self.rows:
            raise FakeError("missing_face")
        face = self._load_real(id_) if self.real else self._load_synthetic(id_)
        self._cache[id_] = face
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return face

    def full(self, id_: str) -> tuple[np.ndarray, np.ndarray]:
        """(full-resolution image, its image -> crop matrix) of pristine face `id_`."""
        if id_ not in self.rows:
            raise FakeError("missing_face")
        row = self.rows[id_]
        if self.real:
            image = decode(self.root / row["path"])
            face = self.renderer.find(image)
            if face is None:
                raise FakeError("no_face")
            return image, self.renderer.matrix(face)
        file = full_path(self.out, id_)
        matrix = json.loads(row.get("gen_params") or "{}").get("crop_matrix")
        if not file.is_file() or matrix is None:
            raise FakeError("no_full_image")
        return decode(file), np.asarray(matrix, np.float64)

    def _load_synthetic(self, id_: str) -> PristineFace:
        row = self.rows[id_]
        lossless = lossless_path(self.out, id_)
        crop = decode(lossless if lossless.is_file() else self.out / row["path"])
        landmarks = landmarks_of(row)
        if landmarks is None:
            raise FakeError("no_landmarks")
        return PristineFace(crop, landmarks, row)

    def _load_real(self, id_: str) -> PristineFace:
        row = self.rows[id_]
        image = decode(self.root / row["path"])
        face = self.renderer.find(image)
        if face is None:
            raise FakeError("no_face")
        if face.landmarks is None:
            raise FakeError("no_landmarks")
        crop, landmarks = self.renderer.crop(image, face)
        return PristineFace(crop, landmarks, row)  # type: ignore[arg-type]


def make_sbi(
    cfg: GenerateConfig, row: Mapping[str, Any], faces: FaceSource
) -> tuple[np.ndarray, PristineFace, dict[str, Any]]:
    """A self-blend of the pristine face `src_id` (its `dst_id` is that face or its transformed target)."""
    face = faces.get(row["src_id"])
    result = self_blend(face.crop, face.landmarks, int(row["seed"]), cfg.sbi)
    return result.image, face, {"sbi": result.params}


def make_sbi_target(
    cfg: GenerateConfig, row: Mapping[str, Any], faces: FaceSource
) -> tuple[np.ndarray, PristineFace, dict[str, Any]]:
    """The transformed target of the self-blend with the same seed: that fake's real partner."""
    face = faces.get(row["src_id"])
    result = self_blend(face.crop, face.landmarks, int(row["seed"]), cfg.sbi)
    if result.params["transformed"] != "target":
        raise FakeError("sbi_target_not_transformed")
    keys = ("transformed", "rgb_shift", "degrade")
    return result.target, face, {"sbi_target": {k: result.params[k] for k in keys if k in result.params}}


def make_inswapper(
    cfg: GenerateConfig, row: Mapping[str, Any], faces: FaceSource, swapper, embeddings: dict[str, np.ndarray]
) -> tuple[np.ndarray, PristineFace, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The swap on the target's full-resolution image, cropped exactly as the target's crop was."""
    dst = faces.get(row["dst_id"])
    src_id = row["src_id"]
    if src_id not in embeddings:
        src = faces.get(src_id)
        embeddings[src_id] = swapper.embedding(src.crop, src.landmarks)
    full, matrix = faces.full(row["dst_id"])
    landmarks = transform_points(dst.landmarks, cv2.invertAffineTransform(matrix))
    swapped = swapper.swap(full, landmarks, embeddings[src_id])
    image = faces.renderer.aligner.warp(swapped, matrix)
    return image, dst, {"pair_rule": row["pair_rule"], "src_cell": row["src_cell"], "swapped_on": list(full.shape[:2])}


def fake_provenance(dst: PristineFace) -> dict[str, Any]:
    """A fake carries its target face's prompt and sampling settings (null for real faces)."""
    keys = ("prompt", "negative_prompt", "steps", "guidance")
    out = {}
    for key in keys:
        value = dst.row.get(key)
        out[key] = None if value is None or (isinstance(value, float) and np.isnan(value)) else value
    return out
