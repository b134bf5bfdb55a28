"""The vectorized core: per-group confusion counts and ranking statistics, computed once.

Why this shape (fairlearn's split): the expensive part, sorting and counting, happens here once per
grouping, for all groups together; every metric in `metrics.py` is then a short function of a
`GroupStats`. The same `GroupStats` with a leading resample axis carries the bootstrap, so point
estimates and confidence intervals go through the very same metric code.

The ranking statistics equal scikit-learn's on each group (the field's reference code,
DeepfakeBench's `get_test_metrics`, calls it): AUC is the trapezoidal area under the ROC curve,
AP the step integral of `precision_recall_curve`, and EER is `fpr[nanargmin(|fnr - fpr|)]` over
`roc_curve`'s points *after* its default `drop_intermediate`, whose threshold is the EER threshold;
except for a group whose scores are all equal, whose EER is 0.5 (the diagonal's).
All groups are handled in one pass: rows are sorted by score once, then stably by group, so each
group is one contiguous run and cumulative sums give every group's ROC points at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .groups import OVERALL, Cells, Grouping


@dataclass(frozen=True)
class GroupStats:
    """Sufficient statistics of one grouping. Arrays are (..., n_groups); NaN where undefined.

    `n_pos`/`n_neg` count fake/real rows; `tp`/`fp` count fake/real rows predicted fake at the
    threshold. `auc`, `ap`, `eer` and `eer_threshold` do not depend on the threshold.
    """

    attribute: str
    names: tuple[str, ...]
    n_pos: np.ndarray
    n_neg: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    auc: np.ndarray
    ap: np.ndarray
    eer: np.ndarray
    eer_threshold: np.ndarray

    @property
    def n(self) -> np.ndarray:
        return self.n_pos + self.n_neg


@dataclass(frozen=True)
class Ranking:
    """Per-group ranking statistics (length n_groups, NaN where a group lacks a class)."""

    auc: np.ndarray
    ap: np.ndarray
    eer: np.ndarray
    eer_threshold: np.ndarray


def cell_confusion(cells: Cells, labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """(n_cells, 2, 2) counts indexed [cell, label, predicted fake], predicted fake = score >= threshold."""
    key = cells.code.astype(np.int64) * 4 + labels.astype(np.int64) * 2 + (scores >= threshold)
    return np.bincount(key, minlength=cells.n_cells * 4).reshape(cells.n_cells, 2, 2)


def group_confusion(grouping: Grouping, confusion: np.ndarray) -> np.ndarray:
    """Cell counts summed into the grouping's groups: (n_groups, 2, 2)."""
    return np.einsum("cg,cyp->gyp", grouping.member.astype(np.int64), confusion)


def ranking_stats(scores: np.ndarray, labels: np.ndarray, codes: np.ndarray, n_groups: int) -> Ranking:
    """AUC, AP, EER and the EER threshold of every group.

    Input: rows sorted so that `codes` is non-decreasing and, within a group, scores descend.
    Groups with no rows or a single class get NaN.
    """
    n = scores.size
    auc, ap, eer, eer_thr = (np.full(n_groups, np.nan) for _ in range(4))
    if n == 0:
        return Ranking(auc, ap, eer, eer_thr)
    # Counts as float64: exact integers far beyond any dataset size, and no conversions later.
    tps_all = np.cumsum(labels, dtype=np.float64)
    fps_all = np.arange(1, n + 1, dtype=np.float64) - tps_all
    # One ROC point per distinct score of a group: the last row of each run of equal scores.
    last = np.ones(n, dtype=bool)
    last[:-1] = (scores[:-1] != scores[1:]) | (codes[:-1] != codes[1:])
    idx = np.flatnonzero(last)
    g = codes[idx].astype(np.intp)
    starts = np.searchsorted(codes, np.arange(n_groups))
    tp_before = np.concatenate(([0], tps_all))[starts]
    fp_before = np.concatenate(([0], fps_all))[starts]
    tps = tps_all[idx] - tp_before[g]
    fps = fps_all[idx] - fp_before[g]
    m = idx.size
    first = np.ones(m, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    final = np.ones(m, dtype=bool)
    final[:-1] = g[1:] != g[:-1]
    n_pos = np.zeros(n_groups)
    n_neg = np.zeros(n_groups)
    n_pos[g[final]] = tps[final]
    n_neg[g[final]] = fps[final]
    prev_tps = np.where(first, 0, np.concatenate(([0], tps[:-1])))
    prev_fps = np.where(first, 0, np.concatenate(([0], fps[:-1])))

    both = (n_pos > 0) & (n_neg > 0)
    # AUC: trapezoids between consecutive ROC points, summed exactly (integer-valued floats, area x2).
    area2 = np.bincount(g, weights=(fps - prev_fps) * (tps + prev_tps), minlength=n_groups)
    auc[both] = area2[both] / (2.0 * n_pos[both] * n_neg[both])
    # AP: sum over points of (recall step) x precision.
    ap_sum = np.bincount(g, weights=(tps - prev_tps) * (tps / (tps + fps)), minlength=n_groups)
    has_pos = n_pos > 0
    ap[has_pos] = ap_sum[has_pos] / n_pos[has_pos]
    # EER on roc_curve's points: drop_intermediate keeps a group's first and last points and those
    # where the curve bends (second difference of fps or tps non-zero).
    keep = first | final
    if m > 2:  # at group boundaries `keep` is already set, so mixing neighbouring groups there is harmless
        keep[1:-1] |= (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
    k = np.flatnonzero(keep & both[g])
    if k.size:
        gk = g[k]
        tpr = tps[k] / n_pos[gk]
        fpr = fps[k] / n_neg[gk]
        dist = np.abs((1 - tpr) - fpr)
        seg = np.flatnonzero(np.concatenate(([True], gk[1:] != gk[:-1])))
        seg_min = np.minimum.reduceat(dist, seg)
        at_min = np.flatnonzero(dist == np.repeat(seg_min, np.diff(np.append(seg, k.size))))
        groups_at_min, first_at_min = np.unique(gk[at_min], return_index=True)
        best = at_min[first_at_min]
        eer[groups_at_min] = fpr[best]
        eer_thr[groups_at_min] = scores[idx[k[best]]]
        # roc_curve's extra first point (0, 0) at threshold +inf has |fnr - fpr| = 1 and wins ties.
        origin = groups_at_min[dist[best] >= 1.0]
        eer[origin] = 0.0
        eer_thr[origin] = np.inf
    # A constant score ranks nothing: its ROC is the diagonal, whose equal-error point is 0.5.
    # (roc_curve's two vertices (0, 0) and (1, 1) tie, and the reference's argmin would say 0.)
    constant = both & (np.bincount(g, minlength=n_groups) == 1)
    eer[constant] = 0.5
    eer_thr[constant] = scores[idx[final]][constant[g[final]]]
    return Ranking(auc, ap, eer, eer_thr)


def score_order(scores: np.ndarray) -> np.ndarray:
    """Row order by descending score; computed once and shared by every grouping."""
    return np.argsort(-scores)


def grouping_ranking(
    grouping: Grouping, cell_desc: np.ndarray, labels_desc: np.ndarray, scores_desc: np.ndarray
) -> Ranking:
    """Ranking statistics of one grouping from rows already in descending-score order."""
    n_groups = len(grouping.names)
    if grouping.attribute == OVERALL:
        return ranking_stats(scores_desc, labels_desc, np.zeros(scores_desc.size, dtype=np.int16), 1)
    codes = grouping.lookup[cell_desc]
    if (codes < 0).any():
        known = np.flatnonzero(codes >= 0)
        rows = known[np.argsort(codes[known], kind="stable")]
    else:
        rows = np.argsort(codes, kind="stable")  # radix sort on int16: keeps the score order within a group
    return ranking_stats(scores_desc[rows], labels_desc[rows], codes[rows], n_groups)


def with_counts(stats: GroupStats, confusion: np.ndarray) -> GroupStats:
    """`stats` with threshold counts from a (n_groups, 2, 2) confusion array."""
    return replace(
        stats,
        n_pos=confusion[..., 1, :].sum(-1),
        n_neg=confusion[..., 0, :].sum(-1),
        tp=confusion[..., 1, 1],
        fp=confusion[..., 0, 1],
    )


def group_stats(
    labels: np.ndarray,
    scores: np.ndarray,
    cells: Cells,
    threshold: float,
    order: np.ndarray | None = None,
) -> dict[str, GroupStats]:
    """`GroupStats` of every grouping (OVERALL and the attributes) at `threshold`."""
    order = score_order(scores) if order is None else order
    cell_desc, labels_desc, scores_desc = cells.code[order], labels[order], scores[order]
    confusion = cell_confusion(cells, labels, scores, threshold)
    out: dict[str, GroupStats] = {}
    for name, grouping in cells.groupings.items():
        ranking = grouping_ranking(grouping, cell_desc, labels_desc, scores_desc)
        counts = group_confusion(grouping, confusion)
        zeros = np.zeros(len(grouping.names), dtype=np.int64)
        stats = GroupStats(
            attribute=name,
            names=grouping.names,
            n_pos=zeros,
            n_neg=zeros,
            tp=zeros,
            fp=zeros,
            auc=ranking.auc,
            ap=ranking.ap,
            eer=ranking.eer,
            eer_threshold=ranking.eer_threshold,
        )
        out[name] = with_counts(stats, counts)
    return out


def at_threshold(
    stats: dict[str, GroupStats], cells: Cells, labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, GroupStats]:
    """The same statistics with the counts recomputed at another threshold (ranking stats reused)."""
    confusion = cell_confusion(cells, labels, scores, threshold)
    return {name: with_counts(s, group_confusion(cells.groupings[name], confusion)) for name, s in stats.items()}
