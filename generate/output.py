"""The output folder: image paths, encoding, atomic writes, what is done, what failed.

Layout of `DIR`:
    plan.parquet          every image to make (written before any image)
    requests.json         the top-ups applied (deficits sha256 -> finished?)
    images/<method>/<id>.<png|jpg>
    lossless/<id>.png     pristine faces before JPEG encoding (only with image_format: jpeg), so
                          swaps and blends are encoded once, like the faces they are made from
    lossless/full/<id>.png  the full-resolution image of each pristine face (only when the set has
                          swaps: a swap runs on it and is cropped with the face's `crop_matrix`)
    shards/               per-rank manifest shards while a job runs (merged at the end)
    failed/<id>.json      rows that stayed bad after every retry (reason, attempts)
    manifest.parquet      the merged manifest
    summary.json          made / retried / failed per cell and method
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fairforge.atomic import atomic_write_bytes, atomic_write_json
from fairforge.config.generate import AlignConfig
from fairforge.manifest import SHARD_DIR, recorded_rows

IMAGES_DIR = "images"
LOSSLESS_DIR = "lossless"
FULL_DIR = "full"
FAILED_DIR = "failed"
SUMMARY_NAME = "summary.json"


def extension(cfg: AlignConfig) -> str:
    return "png" if cfg.image_format == "png" else "jpg"


def image_relpath(method: str, id_: str, cfg: AlignConfig) -> str:
    return f"{IMAGES_DIR}/{method}/{id_}.{extension(cfg)}"


def lossless_path(out: Path, id_: str) -> Path:
    return out / LOSSLESS_DIR / f"{id_}.png"


def full_path(out: Path, id_: str) -> Path:
    """The full-resolution image a pristine crop was cut from (kept when the set has face swaps)."""
    return out / LOSSLESS_DIR / FULL_DIR / f"{id_}.png"


def encode(image: np.ndarray, cfg: AlignConfig, lossless: bool = False) -> bytes:
    """RGB uint8 -> file bytes, the one encoding every image of the set gets."""
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    if lossless or cfg.image_format == "png":
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise RuntimeError("image encoding failed")
    return data.tobytes()


def decode(path: Path) -> np.ndarray:
    """A file -> RGB uint8."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return np.ascontiguousarray(image[:, :, ::-1])


def write_image(out: Path, relpath: str, data: bytes) -> None:
    atomic_write_bytes(out / relpath, data)


def read_rows(out: Path) -> pd.DataFrame:
    """Every manifest row recorded in the folder (merged manifest and unmerged shards), by id."""
    return recorded_rows(out)


def done_ids(out: Path, rows: pd.DataFrame | None = None) -> set[str]:
    """Ids whose manifest row AND image file exist: what a restart skips."""
    rows = read_rows(out) if rows is None else rows
    return {i for i, p in zip(rows["id"], rows["path"]) if isinstance(p, str) and (out / p).is_file()}


def mark_failed(out: Path, row: dict[str, Any], reason: str, attempts: int) -> None:
    atomic_write_json(
        out / FAILED_DIR / f"{row['id']}.json",
        {"id": row["id"], "method": row["method"], "reason": reason, "attempts": attempts},
    )


def clear_failed(out: Path, id_: str) -> None:
    (out / FAILED_DIR / f"{id_}.json").unlink(missing_ok=True)


def failed_records(out: Path) -> dict[str, dict[str, Any]]:
    folder = out / FAILED_DIR
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")}


def sweep_temporaries(out: Path) -> int:
    """Remove temporaries a killed writer left (`.NAME.XXXX.tmp`); only safe when no writer runs."""
    removed = 0
    for folder in (out / IMAGES_DIR, out / LOSSLESS_DIR, out / SHARD_DIR, out / FAILED_DIR, out):
        if folder.is_dir():
            for tmp in folder.rglob(".*.tmp") if folder != out else folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    atomic_write_json(out / SUMMARY_NAME, summary)
    return out / SUMMARY_NAME
