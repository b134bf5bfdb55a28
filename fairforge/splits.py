"""Train / validation / test: the split vocabulary and the person-level assignment every stage shares.

Why here and not in one stage: generate gives every pristine face (and every real person of a
pool) its split when the plan is made, so that each swap and blend can draw its source and target
from one split; balance caps and tops up per split with the same counts. Both must compute the
same thing, and stages only share `fairforge/`.

- `split_sequence(key, n, fractions)`: the split of the 0..n-1-th item of a stratum (a cell, a
  cell and method). A largest-deficit apportionment: after any prefix every split holds its
  fraction of the items to within one, so a stratum of 25 follows 80/10/10 as closely as 25 can;
  the sequence starts at an offset hashed from `key`, so the rounding of small strata spreads
  over the splits instead of always favouring train. Item i's split never depends on how many
  items follow, so growing a pool never moves a planned face.
- `person_splits(...)`: real data without official splits (or re-split on request) by person:
  rows joined transitively by every identity column are one group, and scikit-learn's
  `StratifiedGroupKFold` deals the groups over folds stratified by (source, label, method, cell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: Other names for a split that manifests, importers and configs may carry.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}
#: Columns naming a person in a row: the row's own id (a generated face is its own person), the
#: person in the image, and for fakes the faces (`src_id`, `dst_id`) and persons they were made from.
IDENTITY_COLUMNS: tuple[str, ...] = ("id", "identity", "src_identity", "src_id", "dst_id")


def normalize_split(value: object) -> object:
    """`val` / `valid` / `dev` -> `validation` (and so on); other values unchanged (validation names them)."""
    if isinstance(value, str):
        return SPLIT_ALIASES.get(value.strip().lower(), value)
    return value


def normalize_splits(values: pd.Series) -> pd.Series:
    """`normalize_split` over a column, vectorized."""
    if values.dtype != object and not pd.api.types.is_string_dtype(values):
        return values
    lowered = values.where(values.isna(), values.astype(str).str.strip().str.lower())
    mapped = lowered.map(SPLIT_ALIASES)
    return mapped.where(mapped.notna(), values)


def _offset(key: str, period: int) -> int:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % max(period, 1)


def _period(fractions: tuple[float, ...]) -> int:
    """The smallest n <= 1000 at which every fraction is a whole number of items (1000 otherwise)."""
    for n in range(1, 1001):
        if all(abs(f * n - round(f * n)) < 1e-9 for f in fractions):
            return n
    return 1000


@lru_cache(maxsize=64)
def _base_sequence(fractions: tuple[float, ...], length: int) -> tuple[int, ...]:
    """Largest-deficit apportionment: item i goes to the split furthest below (i + 1) * fraction."""
    counts = [0] * len(fractions)
    out = []
    for i in range(length):
        deficit = [(i + 1) * f - c for f, c in zip(fractions, counts)]
        best = max(range(len(fractions)), key=lambda s: (deficit[s], fractions[s], -s))
        counts[best] += 1
        out.append(best)
    return tuple(out)


def active_fractions(fractions: Mapping[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The splits with a positive fraction (in SPLITS order) and their fractions, normalized."""
    names = tuple(s for s in SPLITS if fractions.get(s, 0.0) > 0)
    total = sum(fractions[s] for s in names)
    return names, tuple(fractions[s] / total for s in names)


def split_sequence(key: str, n: int, fractions: Mapping[str, float], start: int = 0) -> list[str]:
    """Splits of items `start .. start + n - 1` of the stratum `key` (see the module docstring)."""
    names, weights = active_fractions(fractions)
    if not names:
        raise ValueError(f"no split has a positive fraction: {dict(fractions)}")
    period = _period(weights)
    first = _offset(key, period) + start
    if period < 1000:  # the apportionment repeats every `period` items
        base = _base_sequence(weights, period)
        return [names[base[i % period]] for i in range(first, first + n)]
    base = _base_sequence(weights, first + n)
    return [names[base[i]] for i in range(first, first + n)]


def split_counts(key: str, n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """How many of a stratum's first `n` items each split holds (the plan's and the cap's numbers)."""
    counts = dict.fromkeys(active_fractions(fractions)[0], 0)
    for split in split_sequence(key, n, fractions):
        counts[split] += 1
    return counts


# ------------------------------------------------------------------------------------------------
# persons: groups of rows that must share a split
# ------------------------------------------------------------------------------------------------
def _edges(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(row, first row sharing the value) for every non-empty identity value after its first use."""
    rows, values = [], []
    for column in columns:
        if column not in frame.columns:
            continue
        series = frame[column]
        present = (series.notna() & (series.astype(str) != "")).to_numpy()
        rows.append(np.flatnonzero(present))
        values.append(series.to_numpy(dtype=object)[present].astype(str))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    row = np.concatenate(rows)
    codes = pd.factorize(np.concatenate(values))[0]
    first = np.full(codes.max() + 1 if codes.size else 0, len(frame), dtype=np.int64)
    np.minimum.at(first, codes, row)
    keep = first[codes] != row
    return row[keep], first[codes][keep]


def person_groups(frame: pd.DataFrame, columns: Sequence[str] = IDENTITY_COLUMNS) -> np.ndarray:
    """A group number per row: rows sharing a value of any identity column, transitively, share one.

    A union-find over the rows (the leak check in balance finds components its own way)."""
    parent = list(range(len(frame)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    for a, b in zip(*(e.tolist() for e in _edges(frame, columns))):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(len(frame))], dtype=np.int64)
    return np.unique(roots, return_inverse=True)[1]


def person_splits(
    frame: pd.DataFrame, strata: pd.Series, fractions: Mapping[str, float], seed: int = 0
) -> pd.Series:
    """A split per row, whole person groups at a time, each stratum near the fractions.

    `StratifiedGroupKFold` with as many folds as the fractions need (10 for 80/10/10) deals the
    groups so each fold holds each stratum's share; folds are then handed out to the splits by
    their fractions. A set with fewer groups than folds takes as many folds as it has groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    names, weights = active_fractions(fractions)
    out = pd.Series(np.full(len(frame), names[0], dtype=object), index=frame.index, name="split")
    if len(frame) == 0 or len(names) == 1:
        return out
    groups = person_groups(frame)
    n_groups = int(groups.max()) + 1
    folds = min(_period(weights) if _period(weights) <= 20 else 20, n_groups)
    if folds < 2:
        return out
    per_fold = [names[s] for s in _base_sequence(weights, folds)]
    for empty in [s for s in names if s not in per_fold] if folds >= len(names) else []:
        # few groups: every split still gets a fold, taken from the split holding the most
        donor = max(names, key=per_fold.count)
        per_fold[len(per_fold) - 1 - per_fold[::-1].index(donor)] = empty
    # a stratum with fewer members than folds cannot be spread: scikit-learn warns and does its best
    codes = pd.factorize(strata.astype(str).to_numpy(), sort=True)[0]
    import warnings

    if np.bincount(codes).max() < folds:  # every stratum smaller than the folds: group-balanced only
        codes = np.zeros(len(frame), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assignment = np.empty(len(frame), dtype=object)
        for fold, (_, test_rows) in enumerate(splitter.split(np.zeros(len(frame)), codes, groups)):
            assignment[test_rows] = per_fold[fold]
    out[:] = assignment
    return out


__all__ = [
    "IDENTITY_COLUMNS",
    "SPLITS",
    "SPLIT_ALIASES",
    "active_fractions",
    "normalize_split",
    "normalize_splits",
    "person_groups",
    "person_splits",
    "split_counts",
    "split_sequence",
]
