"""The training sampler: shuffled, or balanced by label / intersectional cell, optionally paired.

It yields `(row, seed)` keys: the row to read and a seed for that sample's augmentation. The
order is a pure function of (`seed`, epoch), so every process draws the same order before
Accelerate shards it, and `skip_first_batches` on a resumed run lands on the very samples the
interrupted run would have seen next.

Balancing draws with replacement so each stratum (label; gender-race cell, unknowns as their own
cell; or both) is equally likely. `paired` is the SBI recipe's batch layout: a real image followed
by one of its blended fakes (fake rows of `pair_method` whose `dst_id` is the real row's `id`: the
partner it differs from only inside the face, the transformed target when SBI transformed it);
balancing then applies to the reals. `halves` is PG-FDD's pair-loader layout: every batch is
batch_size/2 reals followed by batch_size/2 fakes; an epoch visits each fake once (in a shuffled
order, or drawn by `balance` when it names cells) and draws the reals at random with replacement
(balanced by cell when asked), as the authors' loader does.
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
    fakes = frame[(frame["label"] == 1) & (frame["method"] == pair_method) & frame["dst_id"].notna()]
    by_source = {key: rows.to_numpy() for key, rows in fakes.groupby("dst_id").groups.items()}
    reals = frame.index[(frame["label"] == 0) & frame["id"].isin(by_source)].to_numpy()
    if len(reals) == 0:
        raise ConfigError(f"data.paired: no real row has a fake with method {pair_method!r} and dst_id pointing to it")
    return reals, [np.asarray(by_source[frame.at[r, "id"]]) for r in reals]


class TrainSampler(Sampler):
    """See the module docstring. `set_epoch` must be called before each epoch (the trainer does)."""

    def __init__(
        self, frame: pd.DataFrame, cfg: DataConfig, taxonomy: Taxonomy, seed: int, paired: bool, halves: bool = False
    ) -> None:
        self.seed = seed
        self.epoch = 0
        self.paired = paired
        self.halves = None
        if halves:
            if paired:
                raise ConfigError("data.paired: real-half/fake-half batches cannot also be SBI pairs")
            self.halves = _Halves(frame, cfg, taxonomy)
            return
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
        if self.halves is not None:
            return len(self.halves)
        return self.anchors * (2 if self.paired else 1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.halves is not None:
            yield from self.halves.keys(generator)
            return
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


def _draw(size: int, count: int, weights: torch.Tensor | None, generator: torch.Generator) -> np.ndarray:
    """`count` positions in [0, size): drawn by `weights`, or uniformly (a shuffle when count == size)."""
    if weights is not None:
        return torch.multinomial(weights, count, replacement=True, generator=generator).numpy()
    if count == size:
        return torch.randperm(size, generator=generator).numpy()
    return torch.randint(size, (count,), generator=generator).numpy()


class _Halves:
    """The real-half/fake-half layout (see the module docstring)."""

    def __init__(self, frame: pd.DataFrame, cfg: DataConfig, taxonomy: Taxonomy) -> None:
        if cfg.batch_size % 2:
            raise ConfigError(f"data.batch_size: must be even with real-half/fake-half batches, got {cfg.batch_size}")
        labels = frame["label"].astype(np.int64).to_numpy()
        self.reals, self.fakes = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        if len(self.reals) == 0 or len(self.fakes) == 0:
            raise ConfigError(
                f"data.train: real-half/fake-half batches need both labels; found {len(self.reals)} real and "
                f"{len(self.fakes)} fake rows"
            )
        self.half = cfg.batch_size // 2
        cells = cfg.balance in ("cell", "cell_label")
        self.weights = []
        for rows in (self.reals, self.fakes):
            stratum = strata(frame.iloc[rows], "cell", taxonomy) if cells else None
            self.weights.append(
                None if stratum is None else torch.as_tensor(1.0 / np.bincount(stratum)[stratum], dtype=torch.float64)
            )
        fakes = cfg.epoch_size // 2 if cfg.epoch_size is not None else len(self.fakes)
        self.batches = fakes // self.half

    def __len__(self) -> int:
        return self.batches * 2 * self.half

    def keys(self, generator: torch.Generator) -> Iterator[tuple[int, int]]:
        count = self.batches * self.half
        # each fake once per epoch in a shuffled order (unless epoch_size or cell balance asks for draws)
        shuffle = count <= len(self.fakes) and self.weights[1] is None
        fake_pick = _draw(len(self.fakes), len(self.fakes) if shuffle else count, self.weights[1], generator)[:count]
        # reals with replacement: the authors' loader draws a random one beside each fake
        real_pick = (
            _draw(len(self.reals), count, self.weights[0], generator)
            if self.weights[0] is not None
            else torch.randint(len(self.reals), (count,), generator=generator).numpy()
        )
        seeds = torch.randint(2**62, (2 * count,), generator=generator).tolist()
        for b in range(self.batches):
            part = slice(b * self.half, (b + 1) * self.half)
            rows = [*self.reals[real_pick[part]], *self.fakes[fake_pick[part]]]
            for j, row in enumerate(rows):
                yield int(row), seeds[2 * b * self.half + j]


__all__ = ["TrainSampler", "pairs", "strata"]
