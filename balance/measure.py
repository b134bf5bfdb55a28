"""One pass over the images: decode once, measure everything the filters need.

A DataLoader decodes each image in its workers and computes there what is per-image CPU work
(file digest, size, sharpness, perceptual hash, dlib face score, each classifier's preprocessing);
the main process runs the classifiers (GPU when present) and the face embedder on whole batches.
Results go to a cache keyed by (image id, file fingerprint) under a folder named by the hash of
every setting that changes a measurement, written in small atomic shards: a killed run, a rerun,
or the next round of the closed loop only measures images it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from PIL import Image
from tqdm.auto import tqdm

from fairforge.config.balance import BalanceConfig
from fairforge.errors import ConfigError, FairforgeError
from fairforge.images import ImageError, decode_image_bytes
from fairforge.manifest import ShardWriter
from fairforge.paths import PathError, allowed_roots, within_roots
from fairforge.taxonomy import Taxonomy

from .backends import load_classifier
from .classifier import AttributeClassifier, pick_device
from .identity import FaceEmbedder, arcface_input
from .quality import FACE_DETECTORS, FaceScorer, perceptual_hash, sharpness

log = logging.getLogger(__name__)

ATTRIBUTES = ("gender", "race", "age")
PRED_COLUMNS = tuple(f"pred_{a}" for a in ATTRIBUTES) + tuple(f"pred_{a}_conf" for a in ATTRIBUTES)
MEASURE_COLUMNS = (
    "readable",
    "width",
    "height",
    "sha256",
    "sharpness",
    "phash",
    "face_score",
    *PRED_COLUMNS,
    "embedding",
)
_PLACEHOLDER = (32, 32)


@dataclass
class Measurers:
    """Everything loaded once per run: classifiers, optional embedder and face detector name."""

    classifiers: list[AttributeClassifier]
    embedder: FaceEmbedder | None
    face_detector: str | None
    cfg: BalanceConfig
    taxonomy: Taxonomy

    @classmethod
    def load(cls, cfg: BalanceConfig, taxonomy: Taxonomy) -> Measurers:
        classifiers = [load_classifier(c, f"balance.classifiers[{i}]", taxonomy) for i, c in enumerate(cfg.classifiers)]
        seen: dict[str, int] = {}
        for i, clf in enumerate(classifiers):
            for attribute in clf.attributes:
                if attribute in seen:
                    raise ConfigError(
                        f"balance.classifiers[{i}]: {attribute} is already predicted by classifiers[{seen[attribute]}]; "
                        f"restrict one with `attributes:`"
                    )
                seen[attribute] = i
        missing = [a for a in cfg.verify.match if a not in seen]
        if missing:
            raise ConfigError(f"balance.verify.match: no classifier predicts {missing}")
        device = pick_device(cfg.device)
        for clf in classifiers:
            clf.to(device, cfg.precision)
        embedder = FaceEmbedder(cfg.identity.model, cfg.identity.providers) if cfg.identity.model else None
        detector = cfg.face.detector if cfg.face.detector in FACE_DETECTORS else None
        return cls(classifiers, embedder, detector, cfg, taxonomy)

    def signature(self) -> str:
        """Hash of every setting a measurement depends on (and of the weight files' size/mtime)."""
        files = [c.info.get("path") for c in self.classifiers] + [self.embedder.path if self.embedder else None]
        stats = [_stat(f) for f in files]
        payload = {
            "classifiers": [c.model_dump() for c in self.cfg.classifiers],
            "files": stats,
            "face": [self.face_detector, self.cfg.face.upsample],
            "sharpness_size": self.cfg.sharpness.size,
            "hash_size": self.cfg.dedup.hash_size,
            "identity": [self.cfg.identity.model, self.embedder.input_size if self.embedder else None],
            "taxonomy": self.taxonomy.to_config(),
            "inputs": "landmark-aligned (arcface norm_crop, fairface dlib chip)",
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stat(path: str | None) -> Any:
    if not path or not os.path.exists(path):
        return path
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns]


class ImageDataset(torch.utils.data.Dataset):
    """Decodes `paths[i]` and returns its measurements and each classifier's input tensor.

    An image is unreadable (measured as a grey placeholder, `readable` False, the reason logged)
    when it cannot be decoded or exceeds the pixel limit, when its real path leaves `roots`, or
    when its bytes no longer match the manifest's `expected` sha256 (the file changed after it
    was written: its old measurements and the manifest's other fields describe another image).
    """

    def __init__(
        self,
        paths: Sequence[str],
        transforms: Sequence[Callable[[Image.Image], torch.Tensor]],
        sharpness_size: int,
        hash_size: int,
        face_detector: str | None,
        upsample: int,
        crop_size: tuple[int, int] | None,
        expected: Sequence[str | None] | None = None,
        roots: Sequence[str] | None = None,
        landmarks: Sequence[np.ndarray | None] | None = None,
        aligns: Sequence[Callable[[np.ndarray, np.ndarray], Image.Image] | None] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.expected = list(expected) if expected is not None else [None] * len(self.paths)
        self.roots = list(roots) if roots is not None else None
        self.landmarks = list(landmarks) if landmarks is not None else [None] * len(self.paths)
        self.aligns = list(aligns) if aligns is not None else [None] * len(transforms)
        self.transforms = list(transforms)
        self.sharpness_size = sharpness_size
        self.hash_size = hash_size
        self.face_detector = face_detector
        self.upsample = upsample
        self.crop_size = crop_size
        self._scorer: FaceScorer | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def _face_score(self, rgb: np.ndarray) -> float:
        if self.face_detector is None:
            return float("nan")
        if self._scorer is None:  # built lazily: once per worker process
            self._scorer = FACE_DETECTORS.get(self.face_detector, key="balance.face.detector")(self.upsample)
        score = self._scorer(rgb)
        return float("nan") if score is None else score

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        try:
            if self.roots is not None and not within_roots(path, self.roots):
                raise PathError(f"{path}: resolves to {os.path.realpath(path)}, outside the manifest's folder")
            data = Path(path).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            want = self.expected[index]
            if isinstance(want, str) and want and want != digest:
                raise ImageError(f"{path}: sha256 {digest} differs from the manifest's {want} (the file changed)")
            image = decode_image_bytes(data, path)
            width, height = image.size
            readable = True
        except (OSError, FairforgeError) as exc:
            log.warning("measure: unreadable: %s", exc)
            image = Image.new("RGB", _PLACEHOLDER, (127, 127, 127))
            readable, digest, (width, height) = False, "", _PLACEHOLDER
        rgb = np.asarray(image)
        landmarks = self.landmarks[index] if readable else None
        inputs = [
            t(align(rgb, landmarks) if align is not None and landmarks is not None else image)
            for t, align in zip(self.transforms, self.aligns)
        ]
        item: dict[str, Any] = {
            "index": index,
            "readable": readable,
            "width": width,
            "height": height,
            "sha256": digest,
            "sharpness": sharpness(rgb, self.sharpness_size),
            "phash": perceptual_hash(image, self.hash_size),
            "face_score": self._face_score(rgb) if readable else float("nan"),
            "inputs": inputs,
        }
        if self.crop_size is not None:
            if landmarks is not None and self.crop_size[0] == self.crop_size[1]:
                crop = arcface_input(rgb, landmarks, self.crop_size[0])
            else:
                crop = np.asarray(image.resize(self.crop_size, Image.BILINEAR))
            item["crop"] = torch.from_numpy(np.ascontiguousarray(crop).copy())
        return item


def fingerprint(row: pd.Series, root: Path) -> str:
    """What identifies an image's bytes: the manifest's sha256 and the file's size and mtime.

    The sha256 alone is what the file held when it was written; the stat says whether it still
    does, so a file changed since (truncated, replaced) is measured again, and that measurement
    checks the bytes against the sha256.
    """
    digest = row.get("sha256")
    try:
        st = os.stat(root / str(row["path"]))
    except OSError:
        return "missing"
    stat = f"stat:{st.st_size}:{st.st_mtime_ns}"
    return f"{digest}:{stat}" if isinstance(digest, str) and digest else stat


class MeasureCache:
    """Measurements keyed by (id, fingerprint), in atomic Parquet shards under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def load(self) -> pd.DataFrame:
        files = sorted((self.folder / "shards").glob("*.parquet"))
        columns = ["id", "fingerprint", *MEASURE_COLUMNS]
        if not files:
            return pd.DataFrame(columns=columns)
        frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        return frame[columns].drop_duplicates(["id", "fingerprint"], keep="last")

    def writer(self, flush_every: int) -> ShardWriter:
        return ShardWriter(self.folder, name="measure", flush_every=flush_every)


def measure(
    frame: pd.DataFrame,
    root: Path,
    measurers: Measurers,
    cache: MeasureCache,
    progress: bool = True,
) -> pd.DataFrame:
    """Measurements for every row of `frame` (same index), from the cache or computed now."""
    keys = pd.Series([fingerprint(row, root) for _, row in frame.iterrows()], index=frame.index, dtype=object)
    cached = cache.load()
    known = set(zip(cached["id"], cached["fingerprint"]))
    todo = [i for i in frame.index if (frame.at[i, "id"], keys[i]) not in known]
    if todo:
        _compute(frame.loc[todo], keys.loc[todo], root, measurers, cache, progress)
        cached = cache.load()
    lookup = cached.set_index(["id", "fingerprint"])
    index = pd.MultiIndex.from_arrays([frame["id"].to_numpy(), keys.to_numpy()])
    out = lookup.reindex(index)
    out.index = frame.index
    return out


def _compute(
    frame: pd.DataFrame,
    keys: pd.Series,
    root: Path,
    measurers: Measurers,
    cache: MeasureCache,
    progress: bool,
) -> None:
    cfg = measurers.cfg
    embedder = measurers.embedder
    dataset = ImageDataset(
        [str(root / p) for p in frame["path"]],
        [c.transform for c in measurers.classifiers],
        cfg.sharpness.size,
        cfg.dedup.hash_size,
        measurers.face_detector,
        cfg.face.upsample,
        embedder.input_size if embedder else None,
        expected=[v if isinstance(v, str) else None for v in frame["sha256"]] if "sha256" in frame else None,
        roots=allowed_roots(root),
        landmarks=[_landmarks(v) for v in frame["landmarks"]] if "landmarks" in frame.columns else None,
        aligns=[c.align for c in measurers.classifiers],
    )
    cuda = any(c.device.type == "cuda" for c in measurers.classifiers)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers, pin_memory=cuda, shuffle=False
    )
    ids = frame["id"].tolist()
    key_list = keys.tolist()
    with cache.writer(flush_every=cfg.batch_size * 4) as writer:
        for batch in tqdm(loader, desc="measure", unit="batch", disable=not progress):
            rows = _batch_rows(batch, measurers)
            for row in rows:
                i = row.pop("index")
                row["id"], row["fingerprint"] = ids[i], key_list[i]
                writer.add(row)


def _landmarks(value: Any) -> np.ndarray | None:
    """A row's stored 68 landmarks (crop pixels) as 68x2, or None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    pts = np.asarray(list(value), dtype=np.float64)
    return pts.reshape(-1, 2) if pts.size == 136 else None


def _batch_rows(batch: dict[str, Any], measurers: Measurers) -> list[dict[str, Any]]:
    n = len(batch["index"])
    readable = batch["readable"].numpy().astype(bool)
    rows: list[dict[str, Any]] = [
        {
            "index": int(batch["index"][j]),
            "readable": bool(readable[j]),
            "width": int(batch["width"][j]),
            "height": int(batch["height"][j]),
            "sha256": batch["sha256"][j] or None,
            "sharpness": float(batch["sharpness"][j]),
            "phash": batch["phash"][j],
            "face_score": None if np.isnan(float(batch["face_score"][j])) else float(batch["face_score"][j]),
            "embedding": None,
        }
        for j in range(n)
    ]
    for clf, inputs in zip(measurers.classifiers, batch["inputs"]):
        for attribute, (values, conf) in clf.predict(inputs).items():
            for j in range(n):
                rows[j][f"pred_{attribute}"] = values[j] if readable[j] else None
                rows[j][f"pred_{attribute}_conf"] = float(conf[j]) if readable[j] else None
    if measurers.embedder is not None:
        feats = measurers.embedder.embed(batch["crop"].numpy())
        for j in range(n):
            rows[j]["embedding"] = feats[j].tolist() if readable[j] else None
    return rows
