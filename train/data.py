"""Manifests -> training/validation tensors.

`load_manifests` reads and validates one or more manifests (the synthetic balanced set and real
datasets imported by `fairforge import`) into one frame; `data_info` fixes the vocabularies the
model is built with; `ManifestDataset` decodes one row into tensors; `make_loader` wraps it in a
DataLoader (workers, pinned memory, persistent workers). Images leave the workers as uint8 and are
normalized on the device (`normalize_batch`): 4x less to copy between processes and to the GPU.

A corrupt or missing image is an error naming the manifest file, row and path; with
`data.skip_bad: true` the row is replaced by the next readable one (batches keep their size, so
every process takes the same number of steps) and its id is appended to `skipped_ids.txt` in the
run folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from fairforge.config.train import DataConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.manifest import concat_manifests
from fairforge.resolve import resolve_dataset
from fairforge.splits import normalize_split
from fairforge.taxonomy import DEFAULT_TAXONOMY, UNKNOWN, Taxonomy

from .augment import augment, is_identity
from .methods.base import DataInfo

logger = logging.getLogger(__name__)

#: How many following rows a bad image may be replaced by before giving up.
MAX_REPLACEMENTS = 16


def load_manifests(
    paths: Sequence[str], split: str | None, key: str, taxonomy: Taxonomy = DEFAULT_TAXONOMY
) -> pd.DataFrame:
    """The rows of every input in `paths` with `split == split` (all rows for None), paths rebased.

    An input is a manifest, a release folder or a Hub dataset id (`fairforge.resolve`)."""
    if not paths:
        raise ConfigError(f"{key}: no manifest given")
    frames = [resolve_dataset(path, taxonomy) for path in paths]
    frame = concat_manifests(frames)
    frame.attrs["files"] = [f.attrs["file"] for f in frames]
    return select_split(frame, split, key)


def select_split(frame: pd.DataFrame, split: str | None, key: str, required: bool = True) -> pd.DataFrame | None:
    """The rows of `split` (every row for None); none is an error naming `key`, or None if not `required`."""
    if split is None:
        return frame
    split = str(normalize_split(split))  # `val` names the validation split too
    part = frame[frame["split"] == split].reset_index(drop=True)
    if part.empty:
        if required:
            raise ConfigError(f"{key}: no row with split == {split!r} in {frame.attrs['files']}")
        return None
    part.attrs.update(root=frame.attrs["root"], files=frame.attrs["files"])
    return part


def _vocab(values: pd.Series, first: str | None = None) -> tuple[str, ...]:
    names = sorted(set(values.dropna().astype(str)))
    if first in names:
        names = [first] + [n for n in names if n != first]
    return tuple(names)


def domains_of(frame: pd.DataFrame) -> pd.Series:
    """A row's domain: its `domain` column, or its `method` where that is empty."""
    return frame["domain"].where(frame["domain"].notna() & (frame["domain"] != ""), frame["method"]).astype(str)


def group_indexes(frame: pd.DataFrame, taxonomy: Taxonomy) -> np.ndarray:
    """Intersectional group index per row (-1 when gender or race is unknown)."""
    genders = frame["gender"].fillna(UNKNOWN).astype(str).tolist()
    races = frame["race"].fillna(UNKNOWN).astype(str).tolist()
    return np.array([taxonomy.group_index(g, r) for g, r in zip(genders, races)], dtype=np.int64)


def data_info(frame: pd.DataFrame, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> DataInfo:
    """The vocabularies and counts of the training rows (see `DataInfo`)."""
    groups = group_indexes(frame, taxonomy)
    labels = frame["label"].astype(int).to_numpy()
    return DataInfo(
        taxonomy=taxonomy,
        domains=_vocab(domains_of(frame), first="real"),
        methods=_vocab(frame["method"], first="real"),
        sources=_vocab(frame["source"]),
        group_counts=tuple(int((groups == g).sum()) for g in range(len(taxonomy.groups))),
        label_counts=(int((labels == 0).sum()), int((labels == 1).sum())),
        num_train=len(frame),
    )


def _codes(values: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(vocab)}
    return np.array([lookup.get(v, -1) for v in values.fillna(UNKNOWN).astype(str)], dtype=np.int64)


class ManifestDataset(Dataset):
    """Rows of a manifest frame as dicts of tensors; see the module docstring and methods/base.py.

    A key is a row index, or `(row, seed)` from the training sampler: the seed drives that
    sample's augmentation.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        info: DataInfo,
        cfg: DataConfig,
        train: bool = False,
        skipped_log: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = Path(frame.attrs["root"])
        self.files = frame.attrs.get("files", [frame.attrs.get("file", str(self.root))])
        self.paths = frame["path"].astype(str).tolist()
        self.ids = frame["id"].astype(str).tolist()
        self.labels = frame["label"].astype(np.int64).to_numpy()
        self.gender = _codes(frame["gender"], info.genders)
        self.race = _codes(frame["race"], info.races)
        self.group = group_indexes(frame, info.taxonomy)
        self.domain = _codes(domains_of(frame), info.domains)
        self.method = _codes(frame["method"], info.methods)
        self.source = _codes(frame["source"], info.sources)
        self.resolution = cfg.resolution
        self.augment_cfg = cfg.augment if train and not is_identity(cfg.augment) else None
        self.skip_bad = cfg.skip_bad
        self.skipped_log = Path(skipped_log) if skipped_log is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int, seed: int | None) -> torch.Tensor:
        path = self.root / self.paths[index]
        try:
            with Image.open(path) as handle:
                image = handle.convert("RGB")
        except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError) as exc:
            raise ManifestError(
                ", ".join(self.files),
                f"cannot read image {path} ({type(exc).__name__}: {exc})",
                row=index,
                column="path",
            ) from None
        if image.size != (self.resolution, self.resolution):
            image = image.resize((self.resolution, self.resolution), Image.Resampling.BILINEAR)
        if self.augment_cfg is not None and seed is not None:
            image = augment(image, self.augment_cfg, seed)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)

    def _read(self, index: int, seed: int | None) -> tuple[int, torch.Tensor]:
        """The image of `index`, or with skip_bad of the next readable row (the bad id is logged)."""
        for attempt in range(MAX_REPLACEMENTS if self.skip_bad else 1):
            row = (index + attempt) % len(self)
            try:
                return row, self._load(row, seed)
            except ManifestError as exc:
                if not self.skip_bad:
                    raise
                logger.warning("skipping %s", exc)
                if self.skipped_log is not None:
                    with open(self.skipped_log, "a", encoding="utf-8") as handle:
                        handle.write(self.ids[row] + "\n")
        raise ManifestError(
            ", ".join(self.files), f"{MAX_REPLACEMENTS} unreadable images in a row", row=index, column="path"
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = (key, None) if isinstance(key, int | np.integer) else (int(key[0]), int(key[1]))
        row, image = self._read(int(index), seed)
        return {
            "image": image,
            "label": int(self.labels[row]),
            "gender": int(self.gender[row]),
            "race": int(self.race[row]),
            "group": int(self.group[row]),
            "domain": int(self.domain[row]),
            "method": int(self.method[row]),
            "source": int(self.source[row]),
            "index": row,
        }


def normalize_batch(batch: dict[str, torch.Tensor], cfg: DataConfig) -> dict[str, torch.Tensor]:
    """uint8 images -> float, normalized by the config's mean/std, on whatever device they are."""
    image = batch["image"]
    mean = torch.tensor(cfg.mean, device=image.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(cfg.std, device=image.device).view(1, 3, 1, 1) * 255.0
    return {**batch, "image": (image.float() - mean) / std}


def make_loader(
    dataset: ManifestDataset,
    cfg: DataConfig,
    batch_size: int,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    workers = cfg.num_workers
    pin = torch.cuda.is_available() if cfg.pin_memory is None else cfg.pin_memory
    extra: dict[str, Any] = {"persistent_workers": cfg.persistent_workers, "prefetch_factor": cfg.prefetch_factor}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        drop_last=drop_last,
        **(extra if workers > 0 else {}),
    )


__all__ = [
    "ManifestDataset",
    "data_info",
    "domains_of",
    "group_indexes",
    "load_manifests",
    "make_loader",
    "normalize_batch",
    "select_split",
]
