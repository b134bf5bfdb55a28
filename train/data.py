"""Manifests -> training/validation tensors.

`load_manifests` reads and validates one or more manifests (the synthetic balanced set and real
datasets imported by `fairforge import`) into one frame; `data_info` fixes the vocabularies the
model is built with (`DataInfo`, stored with every checkpoint); `ManifestDataset` decodes one row into tensors; `make_loader` wraps it in a
DataLoader (workers, pinned memory, persistent workers). Images leave the workers as uint8 and are
normalized on the device (`normalize_batch`): 4x less to copy between processes and to the GPU.

Images are opened through `fairforge.images.open_image` (a pixel limit, every decode failure one
error) at a path that must resolve inside its manifest's folder (`fairforge.paths`). A corrupt,
missing, oversized or escaping image is an error naming the manifest file, its row in that file
and the path; with
`data.skip_bad: true` the row is replaced by the next readable one (batches keep their size, so
every process takes the same number of steps) and its id is appended to `skipped_ids.txt` in the
run folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from fairforge.config.train import DataConfig
from fairforge.errors import ConfigError, FairforgeError, ManifestError
from fairforge.images import open_image
from fairforge.manifest import concat_manifests
from fairforge.paths import allowed_roots, within_roots
from fairforge.resolve import resolve_dataset
from fairforge.splits import normalize_split
from fairforge.taxonomy import UNKNOWN, Taxonomy

from .augment import augment, is_identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataInfo:
    """What the training manifests say, for building models and losses.

    Vocabularies are fixed at the start of training and stored with the checkpoint, so an index
    in a batch means the same name at predict time.
    """

    taxonomy: Taxonomy
    domains: tuple[str, ...]
    methods: tuple[str, ...]
    sources: tuple[str, ...]
    group_counts: tuple[int, ...]
    label_counts: tuple[int, int]
    num_train: int
    #: the `method` values of the fake rows, sorted: the manipulations (PG-FDD's specific classes)
    fake_methods: tuple[str, ...] = ()

    @property
    def genders(self) -> tuple[str, ...]:
        return self.taxonomy.genders

    @property
    def races(self) -> tuple[str, ...]:
        return self.taxonomy.races

    @property
    def groups(self) -> tuple[str, ...]:
        """Intersectional `gender-race` groups, the order of `group` indexes and `group_counts`."""
        return self.taxonomy.groups

    @property
    def num_groups(self) -> int:
        return len(self.taxonomy.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taxonomy": self.taxonomy.to_config(),
            "domains": list(self.domains),
            "methods": list(self.methods),
            "sources": list(self.sources),
            "group_counts": list(self.group_counts),
            "label_counts": list(self.label_counts),
            "num_train": self.num_train,
            "fake_methods": list(self.fake_methods),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataInfo:
        return cls(
            taxonomy=Taxonomy.from_config(data["taxonomy"]),
            domains=tuple(data["domains"]),
            methods=tuple(data["methods"]),
            sources=tuple(data["sources"]),
            group_counts=tuple(int(c) for c in data["group_counts"]),
            label_counts=(int(data["label_counts"][0]), int(data["label_counts"][1])),
            num_train=int(data["num_train"]),
            # exports written before the field: every method but `real` (the vocabulary's first)
            fake_methods=tuple(data.get("fake_methods", [m for m in data["methods"] if m != "real"])),
        )


#: How many following rows a bad image may be replaced by before giving up.
MAX_REPLACEMENTS = 16
#: Bookkeeping columns: which of `attrs["files"]` a row comes from, and its row in that file.
FILE_COLUMN, ROW_COLUMN = "_manifest", "_file_row"


def load_manifests(paths: Sequence[str], split: str | None, key: str, taxonomy: Taxonomy) -> pd.DataFrame:
    """The rows of every input in `paths` with `split == split` (all rows for None), paths rebased.

    An input is a manifest, a release folder or a Hub dataset id (`fairforge.resolve`)."""
    if not paths:
        raise ConfigError(f"{key}: no manifest given")
    frames = [resolve_dataset(path, taxonomy) for path in paths]
    tagged = []
    for k, part in enumerate(frames):
        attrs = dict(part.attrs)
        part = part.assign(**{FILE_COLUMN: k, ROW_COLUMN: np.arange(len(part))})
        part.attrs.update(attrs)
        tagged.append(part)
    frame = concat_manifests(tagged)
    frame.attrs["files"] = [f.attrs["file"] for f in frames]
    frame.attrs["roots"] = sorted({r for f in frames for r in allowed_roots(f.attrs["root"])})
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
    part.attrs.update({k: v for k, v in frame.attrs.items() if k in ("root", "files", "roots")})
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


def data_info(frame: pd.DataFrame, taxonomy: Taxonomy) -> DataInfo:
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
        fake_methods=_vocab(frame.loc[frame["label"] == 1, "method"]),
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
        self.roots = frame.attrs.get("roots") or allowed_roots(self.root)
        n = len(frame)
        self.file_index = frame[FILE_COLUMN].to_numpy() if FILE_COLUMN in frame else np.zeros(n, dtype=np.int64)
        self.file_row = frame[ROW_COLUMN].to_numpy() if ROW_COLUMN in frame else np.arange(n)

    def __len__(self) -> int:
        return len(self.paths)

    def where(self, index: int) -> tuple[str, int]:
        """The manifest file a row comes from and its row there (what a user looks up)."""
        k = int(self.file_index[index])
        return (self.files[k] if 0 <= k < len(self.files) else ", ".join(self.files)), int(self.file_row[index])

    def _load(self, index: int, seed: int | None) -> torch.Tensor:
        path = self.root / self.paths[index]
        try:
            if not within_roots(path, self.roots):
                raise FairforgeError(f"{path} resolves to {os.path.realpath(path)}, outside the manifest's folder")
            image = open_image(path)
        except (FairforgeError, OSError) as exc:
            file, row = self.where(index)
            text = str(exc)
            reason = text[len(str(path)) + 2 :] if text.startswith(f"{path}: ") else text
            raise ManifestError(file, f"cannot read image {path}: {reason}", row=row, column="path") from None
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
        file, row = self.where(index)
        raise ManifestError(file, f"{MAX_REPLACEMENTS} unreadable images in a row from here", row=row, column="path")

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
    "DataInfo",
    "ManifestDataset",
    "data_info",
    "domains_of",
    "group_indexes",
    "load_manifests",
    "make_loader",
    "normalize_batch",
    "select_split",
]
