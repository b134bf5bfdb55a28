"""Every metric as a short function of `GroupStats` (definitions: docs/metrics.md).

Group metrics map a `GroupStats` to one value per group; fairness metrics map the groups of one
grouping (plus the overall row, for the sum forms) to one number in percent. All work on arrays
with any leading axes, so the bootstrap's (resamples, groups) arrays reuse them unchanged.

Which groups a fairness metric compares is the field's reference rule (PG-FDD's
`fairness_metrics.py`): a group lacking real or fake rows has no metrics at all there, so it is
left out of *every* fairness gap of its grouping, not only of those that read its undefined rate.
Comparing a one-class group's positive rate with the others' would compare a fake-only group's
detection rate with mixed groups' selection rates. `left_out` in `report.py` names such groups;
a metric is NaN when fewer than two groups remain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .stats import GroupStats


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def fpr(s: GroupStats) -> np.ndarray:
    """False positive rate: real rows predicted fake / real rows."""
    return _ratio(s.fp, s.n_neg)


def tpr(s: GroupStats) -> np.ndarray:
    """True positive rate: fake rows predicted fake / fake rows."""
    return _ratio(s.tp, s.n_pos)


def acc(s: GroupStats) -> np.ndarray:
    """Accuracy: (true positives + true negatives) / rows."""
    return _ratio(s.tp + (s.n_neg - s.fp), s.n)


def pr(s: GroupStats) -> np.ndarray:
    """Positive rate (selection rate): rows predicted fake / rows."""
    return _ratio(s.tp + s.fp, s.n)


def auc(s: GroupStats) -> np.ndarray:
    return np.asarray(s.auc, dtype=np.float64)


def eer(s: GroupStats) -> np.ndarray:
    return np.asarray(s.eer, dtype=np.float64)


def ap(s: GroupStats) -> np.ndarray:
    return np.asarray(s.ap, dtype=np.float64)


#: Per-group metrics in report order (`overall` and every group carry these keys).
GROUP_METRICS: dict[str, Callable[[GroupStats], np.ndarray]] = {
    "auc": auc,
    "acc": acc,
    "eer": eer,
    "ap": ap,
    "fpr": fpr,
    "tpr": tpr,
    "pr": pr,
}
#: Why a group metric can be null, for `left_out`.
NULL_REASONS: dict[str, str] = {
    "auc": "needs both real and fake rows",
    "eer": "needs both real and fake rows",
    "ap": "needs fake rows",
    "fpr": "needs real rows",
    "tpr": "needs fake rows",
    "acc": "needs rows",
    "pr": "needs rows",
}


def compared(s: GroupStats) -> np.ndarray:
    """Groups a fairness metric compares: those with real and fake rows (the same in every resample)."""
    n_pos, n_neg = np.asarray(s.n_pos), np.asarray(s.n_neg)
    both = (n_pos > 0) & (n_neg > 0)
    return both.reshape(-1, both.shape[-1]).all(axis=0) if both.ndim > 1 else both


def spread(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """max_g - min_g over the groups in `keep`; NaN with fewer than two."""
    if keep.sum() < 2:
        return np.full(values.shape[:-1], np.nan)
    kept = values[..., keep]
    return kept.max(axis=-1) - kept.min(axis=-1)


def deviation(values: np.ndarray, reference: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """sum_g |value_g - reference| over the groups in `keep`; NaN with fewer than two."""
    if keep.sum() < 2:
        return np.full(values.shape[:-1], np.nan)
    return np.abs(values[..., keep] - reference).sum(axis=-1)


def f_fpr(s: GroupStats, overall: GroupStats) -> np.ndarray:
    return 100 * spread(fpr(s), compared(s))


def f_oae(s: GroupStats, overall: GroupStats) -> np.ndarray:
    return 100 * spread(acc(s), compared(s))


def f_dp(s: GroupStats, overall: GroupStats) -> np.ndarray:
    return 100 * spread(pr(s), compared(s))


def f_meo(s: GroupStats, overall: GroupStats) -> np.ndarray:
    keep = compared(s)
    return 100 * np.maximum(spread(fpr(s), keep), spread(tpr(s), keep))


def f_auc(s: GroupStats, overall: GroupStats) -> np.ndarray:
    return 100 * spread(auc(s), compared(s))


def f_efpr(s: GroupStats, overall: GroupStats) -> np.ndarray:
    return 100 * deviation(fpr(s), fpr(overall), compared(s))


def f_eo(s: GroupStats, overall: GroupStats) -> np.ndarray:
    keep = compared(s)
    return 100 * (deviation(fpr(s), fpr(overall), keep) + deviation(tpr(s), tpr(overall), keep))


@dataclass(frozen=True)
class FairnessMetric:
    """A fairness metric, the group metrics it reads, its form, and its definition as the report prints it.

    `form` is "spread" (max over `uses` of max_g - min_g) or "sum" (sum_g |value_g - overall|); the
    intervals of the two are made differently (see `report.py`).
    """

    compute: Callable[[GroupStats, GroupStats], np.ndarray]
    uses: tuple[str, ...]
    definition: str
    form: str = "spread"


#: Fairness metrics in report order; all in percent.
FAIRNESS_METRICS: dict[str, FairnessMetric] = {
    "F_FPR": FairnessMetric(f_fpr, ("fpr",), "100 (max_g FPR_g - min_g FPR_g)"),
    "F_OAE": FairnessMetric(f_oae, ("acc",), "100 (max_g ACC_g - min_g ACC_g)"),
    "F_DP": FairnessMetric(f_dp, ("pr",), "100 (max_g PR_g - min_g PR_g)"),
    "F_MEO": FairnessMetric(f_meo, ("fpr", "tpr"), "100 max(max-min of FPR_g, max-min of TPR_g)"),
    "F_AUC": FairnessMetric(f_auc, ("auc",), "100 (max_g AUC_g - min_g AUC_g)"),
    "F_EFPR": FairnessMetric(f_efpr, ("fpr",), "100 sum_g |FPR_g - FPR_all|", "sum"),
    "F_EO": FairnessMetric(f_eo, ("fpr", "tpr"), "100 sum_g (|FPR_g - FPR_all| + |TPR_g - TPR_all|)", "sum"),
}
