"""Identity-disjoint train/val/test splits, stratified by cell and label.

Rows are joined (union-find) when they share an identity key in the `split.links` columns: by
default the row's own id, its `identity` (a real dataset's person or video id, or generate's
target face) and its `src_id` / `dst_id` (the faces a swap or blend was made from). A connected
group goes to one split whole, so no face is seen in training and again in testing, whatever chain
of swaps links it. Groups are placed largest first into the split that most needs their
(cell, label) strata, which keeps every stratum near the configured fractions.

Swaps whose sources are drawn across cells can chain every face into one group (then nothing can
be split); `links: [identity]` groups a fake with its target face only (FaceForensics++'s rule),
and `crossing_rows` then finds the fakes whose other face landed in another split, which the
stage removes: either way no identity key appears in two splits of the final manifest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairforge.config.balance import SplitConfig
from fairforge.errors import ManifestError
from fairforge.manifest import SPLITS

KEY_COLUMNS = ("id", "identity", "src_id", "dst_id")
OWNER_COLUMNS = ("id", "identity")


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _keys(values: list) -> list[str | None]:  # type: ignore[type-arg]
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v) for v in values]


def identity_groups(frame: pd.DataFrame, links: tuple[str, ...] | list[str] = KEY_COLUMNS) -> np.ndarray:
    """Group number per row (rows sharing a key of the `links` columns, transitively, share a group)."""
    uf = UnionFind(len(frame))
    first_row: dict[str, int] = {}
    for column in dict.fromkeys(("id", *links)):
        if column not in frame.columns:
            continue
        for row, key in enumerate(_keys(frame[column].tolist())):
            if key is None:
                continue
            if key in first_row:
                uf.union(first_row[key], row)
            else:
                first_row[key] = row
    roots = np.array([uf.find(i) for i in range(len(frame))])
    _, groups = np.unique(roots, return_inverse=True)
    return groups


def assign_splits(frame: pd.DataFrame, strata: pd.Series, cfg: SplitConfig, file: str = "manifest") -> pd.Series:
    """A split per row: identity groups whole, strata near the configured fractions."""
    fractions = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    active = [s for s in SPLITS if fractions[s] > 0]
    groups = identity_groups(frame, cfg.links)
    strata_codes, strata_names = pd.factorize(strata, sort=True)
    n_strata = len(strata_names)
    totals = np.bincount(strata_codes, minlength=n_strata).astype(float)
    current = {s: np.zeros(n_strata) for s in SPLITS}
    out = np.empty(len(frame), dtype=object)
    members = pd.Series(np.arange(len(frame))).groupby(groups).apply(list)
    fixed: dict[int, str] = {}
    if cfg.keep_existing and "split" in frame.columns:
        existing = frame["split"].to_numpy()
        for g, rows in members.items():
            given = {existing[r] for r in rows if isinstance(existing[r], str)}
            if len(given) > 1:
                ids = frame["id"].iloc[rows].tolist()[:5]
                raise ManifestError(
                    file, f"rows {ids} share an identity but carry splits {sorted(given)}", column="split"
                )
            if given:
                fixed[int(g)] = given.pop()
    order = sorted(members.index, key=lambda g: (g not in fixed, -len(members[g]), members[g][0]))
    total = float(len(frame))
    placed: dict[int, str] = {}
    for g in order:
        counts = np.bincount(strata_codes[members[g]], minlength=n_strata)
        if g in fixed:
            split = fixed[g]
        else:
            split = min(
                active, key=lambda s: (_added_cost(counts, current[s], fractions[s], totals, total), -fractions[s])
            )
        current[split] += counts
        placed[g] = split
    _fill_empty_splits(placed, members, fixed, active, fractions, total)
    for g, split in placed.items():
        out[members[g]] = split
    return pd.Series(out, index=frame.index, name="split")


def _added_cost(counts: np.ndarray, current: np.ndarray, fraction: float, totals: np.ndarray, total: float) -> float:
    """Growth of the squared distance to the targets (per stratum, and of the split's size) when a
    group with per-stratum `counts` joins a split: sum of ((x + c - t)^2 - (x - t)^2) / scale."""
    strata = float(np.sum(counts * (2 * (current - fraction * totals) + counts) / np.maximum(totals, 1.0)))
    size = counts.sum()
    return strata + float(size * (2 * (current.sum() - fraction * total) + size) / max(total, 1.0))


def _fill_empty_splits(
    placed: dict[int, str],
    members: pd.Series,
    fixed: dict[int, str],
    active: list[str],
    fractions: dict[str, float],
    total: float,
) -> None:
    """A small set can leave a split empty (every stratum too small to share); give each empty split
    the smallest movable group of the split furthest over its target, while that split keeps one."""
    while True:
        sizes = {s: sum(len(members[g]) for g, p in placed.items() if p == s) for s in active}
        empty = [s for s in active if sizes[s] == 0]
        if not empty:
            return
        donors = [s for s in active if sum(1 for g, p in placed.items() if p == s and g not in fixed) > 1]
        if not donors:
            return
        donor = max(donors, key=lambda s: (sizes[s] - fractions[s] * total, fractions[s]))
        movable = [g for g, p in placed.items() if p == donor and g not in fixed]
        placed[min(movable, key=lambda g: (len(members[g]), members[g][0]))] = empty[0]


def crossing_rows(frame: pd.DataFrame, split: pd.Series) -> pd.Series:
    """Rows to remove so that no identity key is in two splits: a row loses when one of its keys
    belongs to another split. A key belongs to the split of the first row that has it as `id` or
    `identity` (the face itself), else of the first row using it at all; so pristine faces and
    real frames stay, and only fakes made across splits go. Returns a boolean mask."""
    split_of = split.to_numpy()
    rows = range(len(frame))
    columns = {c: _keys(frame[c].tolist()) for c in KEY_COLUMNS if c in frame.columns}
    owner: dict[str, str] = {}
    for group in (OWNER_COLUMNS, KEY_COLUMNS):
        for column in group:
            for row, key in zip(rows, columns.get(column, ())):
                if key is not None:
                    owner.setdefault(key, split_of[row])
    drop = np.array(
        [any(columns[c][row] is not None and owner[columns[c][row]] != split_of[row] for c in columns) for row in rows],
        dtype=bool,
    )
    return pd.Series(drop, index=frame.index)
