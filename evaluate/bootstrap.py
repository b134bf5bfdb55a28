"""Stratified bootstrap of every group and fairness metric, vectorized over resamples.

Strata are the (cell, label) pairs of `groups.Cells` (gender x race x real/fake, `unknown`
included): each resample draws, with replacement, exactly as many rows from a stratum as it holds,
so every group keeps its size and class balance and a null rate stays null in every resample.

Why it is fast: a resample is summarized by how many draws fall in each (score bin, cell, label),
and those counts are multinomial, drawn directly (`Generator.multinomial`) without materializing a
million indices. Bins are score intervals whose edges are score values (ties never straddle an
edge) and include the threshold, so
- the confusion counts at the threshold are exact: TP = draws of fake rows in bins above it;
- AUC pairs from different bins are exact (their order is known from the bins);
- pairs within one bin enter through their mean over the original rows (a fake row of cell c1 above
  a real row of cell c2, ties one half), i.e. the conditional expectation given the bin counts.
With at most `max_bins` distinct scores every bin holds one score value and the bootstrap is the
exact stratified bootstrap. Otherwise the only approximation is the within-bin term: it drops the
within-bin part of the AUC's bootstrap variance, which is of relative order 1/bins^2.
AP and EER are not bootstrapped; the report's intervals cover AUC, the rates and every fairness metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .groups import Cells
from .stats import GroupStats, score_order

#: Largest resample chunk, in (resamples x bins x cells) counts held at once.
_CHUNK_BUDGET = 1 << 21


@dataclass(frozen=True)
class BinPlan:
    """What a resample needs from the data: rows per (bin, cell) of each label and within-bin pair means."""

    above: int  # bins >= above hold the scores >= threshold
    n_pos: np.ndarray  # (bins, cells) fake rows
    n_neg: np.ndarray  # (bins, cells) real rows
    pair_mean: np.ndarray  # (bins, cells, cells) mean of [fake score > real score] + 0.5 [equal] within a bin
    cells: np.ndarray  # the cell ids present (columns of the arrays above)
    exact: bool  # every bin holds a single score value


def _edges(sorted_scores: np.ndarray, threshold: float, max_bins: int) -> tuple[np.ndarray, bool]:
    """Bin edges (score values; bin(s) = number of edges <= s) and whether bins are single values."""
    distinct = sorted_scores[np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1]))]
    exact = distinct.size <= max_bins
    if exact:
        edges = distinct[1:]
    else:
        positions = np.linspace(0, sorted_scores.size, max_bins, endpoint=False)[1:].astype(np.int64)
        edges = np.unique(sorted_scores[positions])
    return np.union1d(edges, [threshold]), exact


def plan_bins(
    labels: np.ndarray,
    scores: np.ndarray,
    cells: Cells,
    threshold: float,
    max_bins: int = 256,
    order: np.ndarray | None = None,
) -> BinPlan:
    """Bin the rows by score and count what each (bin, cell, label) holds."""
    asc = (score_order(scores) if order is None else order)[::-1]
    s, y, c = scores[asc], labels[asc].astype(bool), cells.code[asc]
    edges, exact = _edges(s, threshold, max_bins)
    n_bins = edges.size + 1
    b = np.searchsorted(edges, s, side="right")
    present = np.flatnonzero(np.bincount(c, minlength=cells.n_cells))
    compact = np.full(cells.n_cells, -1, dtype=np.int64)
    compact[present] = np.arange(present.size)
    cc = compact[c]
    n_cells = present.size
    key = b * n_cells + cc
    n_pos = np.bincount(key[y], minlength=n_bins * n_cells).reshape(n_bins, n_cells)
    n_neg = np.bincount(key[~y], minlength=n_bins * n_cells).reshape(n_bins, n_cells)
    pairs = n_pos[:, :, None] * n_neg[:, None, :]
    if exact:
        within = 0.5 * pairs
    else:
        within = _within_bin_pairs(s, y, b, cc, n_bins, n_cells)
    pair_mean = np.zeros(pairs.shape)
    np.divide(within, pairs, out=pair_mean, where=pairs > 0)
    above = int(np.searchsorted(edges, threshold, side="right"))
    return BinPlan(above, n_pos, n_neg, pair_mean, present, exact)


def _within_bin_pairs(
    s: np.ndarray, y: np.ndarray, b: np.ndarray, cc: np.ndarray, n_bins: int, n_cells: int
) -> np.ndarray:
    """(bins, cells, cells) count of (fake in c1, real in c2) pairs in one bin with the fake scored higher (ties 1/2).

    Rows come sorted by ascending score, so "real rows below a fake row in its bin" is a difference
    of cumulative counts; one pass per real-row cell.
    """
    n = s.size
    change = np.concatenate(([True], s[1:] != s[:-1]))
    run_first = np.flatnonzero(change)
    run_id = np.cumsum(change) - 1
    run_stop = np.append(run_first[1:], n)
    bin_start = np.searchsorted(b, np.arange(n_bins))
    fake = np.flatnonzero(y)
    tie_lo, tie_hi, lo = run_first[run_id[fake]], run_stop[run_id[fake]], bin_start[b[fake]]
    key = b[fake] * n_cells + cc[fake]
    out = np.zeros((n_bins, n_cells, n_cells))
    for d in range(n_cells):
        real_d = ~y & (cc == d)
        if not real_d.any():
            continue
        cum = np.concatenate(([0], np.cumsum(real_d)))
        below = cum[tie_lo] - cum[lo] + 0.5 * (cum[tie_hi] - cum[tie_lo])
        out[:, :, d] = np.bincount(key, weights=below, minlength=n_bins * n_cells).reshape(n_bins, n_cells)
    return out


def draw_counts(rng: np.random.Generator, counts: np.ndarray, size: int) -> np.ndarray:
    """(size, bins) counts of `counts.sum()` rows drawn with replacement, each bin hit in proportion to `counts`."""
    out = np.zeros((size, counts.size), dtype=np.int64)
    nonzero = np.flatnonzero(counts)
    total = int(counts.sum())
    if nonzero.size == 1:
        out[:, nonzero[0]] = total
    elif nonzero.size > 1:
        out[:, nonzero] = rng.multinomial(total, counts[nonzero] / total, size=size)
    return out


def resample_stats(plan: BinPlan, cells: Cells, w_pos: np.ndarray, w_neg: np.ndarray) -> dict[str, GroupStats]:
    """Group statistics of resamples given their draws per (resample, bin, cell) of fake and real rows."""
    z = np.einsum("xkc,kcd,xkd->xcd", w_pos, plan.pair_mean, w_neg, optimize=True)
    out: dict[str, GroupStats] = {}
    for name, grouping in cells.groupings.items():
        member = grouping.member[plan.cells].astype(np.float64)
        pos = w_pos @ member  # (resamples, bins, groups)
        neg = w_neg @ member
        n_pos = plan.n_pos.sum(axis=0) @ member
        n_neg = plan.n_neg.sum(axis=0) @ member
        neg_below = np.cumsum(neg, axis=1) - neg
        pairs = (pos * neg_below).sum(axis=1) + np.einsum("xcd,cg,dg->xg", z, member, member)
        auc = np.full(pairs.shape, np.nan)
        both = n_pos * n_neg
        np.divide(pairs, both, out=auc, where=both > 0)
        undefined = np.full(pairs.shape, np.nan)
        out[name] = GroupStats(
            attribute=name,
            names=grouping.names,
            n_pos=n_pos,
            n_neg=n_neg,
            tp=pos[:, plan.above :, :].sum(axis=1),
            fp=neg[:, plan.above :, :].sum(axis=1),
            auc=auc,
            ap=undefined,
            eer=undefined,
            eer_threshold=undefined,
        )
    return out


@dataclass(frozen=True)
class Bootstrap:
    """Resampled statistics per grouping, arrays (n_resamples, n_groups); `exact`: no score binning."""

    stats: dict[str, GroupStats]
    exact: bool


def bootstrap_stats(
    labels: np.ndarray,
    scores: np.ndarray,
    cells: Cells,
    threshold: float,
    n_resamples: int,
    seed: int | Sequence[int] = 0,
    max_bins: int = 256,
    order: np.ndarray | None = None,
    progress: bool = False,
) -> Bootstrap:
    """`GroupStats` of `n_resamples` stratified resamples, arrays (n_resamples, n_groups).

    Deterministic for a given (data, threshold, n_resamples, seed, max_bins).
    """
    plan = plan_bins(labels, scores, cells, threshold, max_bins, order)
    rng = np.random.default_rng(seed)
    n_bins, n_cells = plan.n_pos.shape
    chunk = max(1, _CHUNK_BUDGET // (n_bins * n_cells))
    parts: list[dict[str, GroupStats]] = []
    with tqdm(total=n_resamples, desc="bootstrap", unit="resample", disable=not progress) as bar:
        for start in range(0, n_resamples, chunk):
            size = min(chunk, n_resamples - start)
            w_pos = np.zeros((size, n_bins, n_cells))
            w_neg = np.zeros((size, n_bins, n_cells))
            for j in range(n_cells):
                w_pos[:, :, j] = draw_counts(rng, plan.n_pos[:, j], size)
                w_neg[:, :, j] = draw_counts(rng, plan.n_neg[:, j], size)
            parts.append(resample_stats(plan, cells, w_pos, w_neg))
            bar.update(size)
    stats = {
        name: GroupStats(
            attribute=name,
            names=first.names,
            n_pos=first.n_pos,
            n_neg=first.n_neg,
            tp=np.concatenate([p[name].tp for p in parts]),
            fp=np.concatenate([p[name].fp for p in parts]),
            auc=np.concatenate([p[name].auc for p in parts]),
            ap=np.concatenate([p[name].ap for p in parts]),
            eer=np.concatenate([p[name].eer for p in parts]),
            eer_threshold=np.concatenate([p[name].eer_threshold for p in parts]),
        )
        for name, first in parts[0].items()
    }
    return Bootstrap(stats, plan.exact)
