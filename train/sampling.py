"""The training sampler: shuffled, or balanced by label / intersectional cell, optionally paired.

It yields `(row, seed)` keys: the row to read and a seed for that sample's augmentation. The
order is a pure function of (`seed`, epoch), so every process draws the same order before
Accelerate shards it, and `skip_first_batches` on a resumed run lands on the very samples the
interrupted run would have seen next.

Balancing draws with replacement so each stratum (label; gender-race cell, unknowns as their own
cell; or both) is equally likely. `paired` is the SBI recipe's batch layout: a real image followed
by one of its blended fakes (fake rows of `pair_method` whose `src_id` is the real row's `id`);
balancing then applies to the reals.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Sampler

from fairforge.config.train import DataConfig
from fairforge.errors import ConfigError
from fairforge.taxonomy import Taxonomy

from .data import group_indexes


def strata(frame: pd.DataFrame, balance: str, taxonomy: Taxonomy) -> np.ndarray | None:
    """Stratum id per row for `data.balance` (None for `none`)."""
    if balance == "none":
        return None
    labels = frame["label"].astype(np.int64).to_numpy()
    if balance == "label":
        return labels
    groups = group_indexes(frame, taxonomy) + 1  # -1 (unknown) becomes cell 0
    return groups if balance == "cell" else groups * 2 + labels


def pairs(frame: pd.DataFrame, pair_method: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Real rows that have fakes of `pair_method`, and for each the rows of those fakes."""
    fakes = frame[(frame["label"] == 1) & (frame["method"] == pair_method) & frame["src_id"].notna()]
    by_source = {key: rows.to_numpy() for key, rows in fakes.groupby("src_id").groups.items()}
    reals = frame.index[(frame["label"] == 0) & frame["id"].isin(by_source)].to_numpy()
    if len(reals) == 0:
        raise ConfigError(f"data.paired: no real row has a fake with method {pair_method!r} and src_id pointing to it")
    return reals, [np.asarray(by_source[frame.at[r, "id"]]) for r in reals]


class TrainSampler(Sampler):
    """See the module docstring. `set_epoch` must be called before each epoch (the trainer does)."""

    def __init__(self, frame: pd.DataFrame, cfg: DataConfig, taxonomy: Taxonomy, seed: int, paired: bool) -> None:
        self.seed = seed
        self.epoch = 0
        self.paired = paired
        if paired:
            if cfg.batch_size % 2:
                raise ConfigError(f"data.batch_size: must be even with paired real/fake batches, got {cfg.batch_size}")
            self.rows, self.partners = pairs(frame, cfg.pair_method)
            base = frame.loc[self.rows].reset_index(drop=True)
        else:
            self.rows, self.partners = np.arange(len(frame)), []
            base = frame
        labels = strata(base, cfg.balance, taxonomy)
        if labels is None:
            self.weights = None
        else:
            counts = np.bincount(labels)
            self.weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)
        anchors = len(self.rows)
        if cfg.epoch_size is not None:
            anchors = cfg.epoch_size // 2 if paired else cfg.epoch_size
        self.anchors = anchors

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.anchors * (2 if self.paired else 1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is None:
            if self.anchors <= len(self.rows):
                picks = torch.randperm(len(self.rows), generator=generator)[: self.anchors]
            else:
                picks = torch.randint(len(self.rows), (self.anchors,), generator=generator)
        else:
            picks = torch.multinomial(self.weights, self.anchors, replacement=True, generator=generator)
        picks = picks.numpy()
        seeds = torch.randint(2**62, (len(self),), generator=generator).tolist()
        if self.paired:
            choice = torch.rand(self.anchors, generator=generator).numpy()
            for i, p in enumerate(picks):
                fakes = self.partners[p]
                yield int(self.rows[p]), seeds[2 * i]
                yield int(fakes[int(choice[i] * len(fakes))]), seeds[2 * i + 1]
        else:
            for i, p in enumerate(picks):
                yield int(self.rows[p]), seeds[i]


__all__ = ["TrainSampler", "pairs", "strata"]
